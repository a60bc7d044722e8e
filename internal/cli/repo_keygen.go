package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sign"
)

func newRepoKeygenCmd() *cobra.Command {
	var (
		out    string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "keygen --out PREFIX [--json]",
		Short: "Make an ed25519 key pair for signing commits and summaries",
		Long: `Generate an ed25519 key pair in ostree's forms: PREFIX.key holds the base64
secret key (seed and public key, mode 0600), PREFIX.pub the base64 public key,
one line each. Existing files are never overwritten. Prints the public key.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return usagef("--out PREFIX is required")
			}
			key, pub, err := sign.GenerateKey(nil)
			if err != nil {
				return fmt.Errorf("cannot generate a key: %w", err)
			}
			if err := sign.WriteKeyPair(out, key); err != nil {
				return fmt.Errorf("cannot write the key pair: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), keygenJSON{SecretKeyFile: absPath(out + ".key"), PublicKeyFile: absPath(out + ".pub"), PublicKey: pub.String()})
			}
			fmt.Fprintln(cmd.OutOrStdout(), pub)
			return nil
		},
	}
	cmd.Flags().StringVar(&out, "out", "", "write PREFIX.key and PREFIX.pub")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the file names and public key as JSON")
	return cmd
}
