package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sign"
)

func newRepoSignCmd() *cobra.Command {
	var (
		path, keyFile string
		asJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "sign --repo R REV --sign-key FILE [--json]",
		Short: "Add an ed25519 signature to a commit's detached metadata",
		Long: `Sign the commit REV (a ref or checksum) with the ed25519 secret key in FILE
(strata repo keygen) and append the signature to the commit's detached
metadata (.commitmeta, key ostree.sign.ed25519), keeping every signature and
key already there, as ostree sign does. Signing again with the same key
changes nothing.`,
		Args:              argNames("REV"),
		ValidArgsFunction: completeRevs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("key") {
				fmt.Fprintln(cmd.ErrOrStderr(), "strata: --key is deprecated, use --sign-key")
			}
			if keyFile == "" {
				return usagef("missing --sign-key FILE: the ed25519 secret key to sign with (strata repo keygen)")
			}
			key, err := sign.LoadSecretKey(keyFile)
			if err != nil {
				return fmt.Errorf("cannot sign: %w", err)
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			res, err := r.SignCommit(args[0], key)
			if err != nil {
				return fmt.Errorf("cannot sign %s: %w", args[0], err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), signJSON{Commit: res.Commit.String(), Engine: res.Engine, Key: res.Key, Added: res.Added})
			}
			verb := "signed"
			if !res.Added {
				verb = "already signed"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s with ed25519 key %s\n", verb, res.Commit, res.Key)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&keyFile, "sign-key", "", "ed25519 secret key file (strata repo keygen)")
	// --key was this flag's first name; it stays, hidden, for scripts.
	cmd.Flags().StringVar(&keyFile, "key", "", "ed25519 secret key file")
	cmd.Flags().MarkHidden("key")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
