package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sign"
)

func newRepoVerifyCmd() *cobra.Command {
	var (
		path   string
		keys   []string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "verify --repo R REV --trusted-key FILE... [--json]",
		Short: "Check a commit's ed25519 signature against trusted keys",
		Long: `Check that the commit REV (a ref or checksum) carries, in its detached
metadata, an ed25519 signature by one of the public keys in the --trusted-key
files (one base64 key per line, as ostree's trusted.ed25519 files). Prints the
key that signed and exits 0; exits 1 saying why otherwise (no signature, or
none by a trusted key).`,
		Args:              argNames("REV"),
		ValidArgsFunction: completeRevs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(keys) == 0 {
				return usagef("--trusted-key FILE is required")
			}
			trusted, err := sign.LoadTrustedKeyFiles(keys...)
			if err != nil {
				return fmt.Errorf("cannot verify: %w", err)
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			c, res, verr := r.VerifyCommit(args[0], sign.NewEd25519Verifier(trusted, nil))
			if c.IsZero() {
				return fmt.Errorf("cannot verify %s: %w", args[0], verr)
			}
			if asJSON {
				out := verifyJSON{Commit: c.String(), Valid: verr == nil, Engine: res.Engine, Key: res.Key}
				if verr != nil {
					out.Error = verr.Error()
				}
				if err := writeJSON(cmd.OutOrStdout(), out); err != nil {
					return err
				}
			}
			if verr != nil {
				return fmt.Errorf("cannot verify: %w", verr)
			}
			if !asJSON {
				fmt.Fprintf(cmd.OutOrStdout(), "commit %s: good %s signature by key %s\n", c, res.Engine, res.Key)
			}
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringArrayVar(&keys, "trusted-key", nil, "file of trusted ed25519 public keys (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}
