package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/repo"
)

func newRepoCheckoutCmd() *cobra.Command {
	var (
		path, subpath          string
		userMode, verify, asJS bool
	)
	cmd := &cobra.Command{
		Use:   "checkout --repo R REV DEST [--user-mode] [--subpath P]",
		Short: "Check out a commit's tree into a new directory",
		Long: `Check out the tree of REV (a ref or commit checksum) into DEST, which must not
exist or be an empty directory. Content is hardlinked from bare repositories
(bare-user and bare-user-only in --user-mode) and copied otherwise. Every object
used is verified; --verify=false skips hashing hardlinked objects.`,
		Args:              argNames("REV", "DEST"),
		ValidArgsFunction: completeFirstRev,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			bar := newProgress(cmd, "checkout", -1, false)
			st, err := repo.Checkout(cmd.Context(), r, args[0], args[1], repo.CheckoutOptions{
				UserMode:      userMode,
				Subpath:       subpath,
				NoVerifyLinks: !verify,
				Progress:      bar,
			})
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot check out: %w", err)
			}
			if asJS {
				return writeJSON(cmd.OutOrStdout(), checkoutJSON{
					Commit: st.Commit.String(), Dest: absPath(args[1]), Dirs: st.Dirs, Files: st.Files,
					Hardlinked: st.Hardlinked, Copied: st.Copied, Verified: st.Verified,
				})
			}
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().BoolVarP(&userMode, "user-mode", "U", false, "do not change ownership or apply xattrs, drop setuid/setgid (ostree checkout -U)")
	cmd.Flags().StringVar(&subpath, "subpath", "", "check out only this path of the tree")
	cmd.Flags().BoolVar(&verify, "verify", true, "hash hardlinked objects too (copied objects are always verified)")
	cmd.Flags().BoolVar(&asJS, "json", false, "print what was done as JSON")
	return cmd
}
