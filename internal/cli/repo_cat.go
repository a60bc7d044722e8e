package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/repo"
)

func newRepoCatCmd() *cobra.Command {
	var path string
	cmd := &cobra.Command{
		Use:   "cat --repo R REV PATH",
		Short: "Print a file of a commit's tree",
		Long: `Write the content of the regular file PATH in the tree of REV to standard output.
The object's checksum is verified as it is read; a mismatch is reported after
the bytes were written. Directories and symlinks are refused.`,
		Args:              argNames("REV", "PATH"),
		ValidArgsFunction: completeFirstRev,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			if err := repo.Cat(cmd.Context(), r, args[0], args[1], cmd.OutOrStdout()); err != nil {
				return fmt.Errorf("cannot print file: %w", err)
			}
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	return cmd
}
