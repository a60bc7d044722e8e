package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/repo"
)

func init() { register("repo", newRepoDiffCmd) }

type diffJSON struct {
	Modified []string `json:"modified"`
	Removed  []string `json:"removed"`
	Added    []string `json:"added"`
}

func newRepoDiffCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "diff --repo R REVA REVB [--json]",
		Short: "List the paths that differ between two commits",
		Long: `Compare the trees of REVA and REVB like ostree diff: "M    PATH" for a file or
directory whose content or metadata changed, "D    PATH" for one only in REVA
(a removed directory is listed alone), "A    PATH" for one only in REVB (an added
directory with everything below it). A changed root directory is "M    /".`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			d, err := repo.Diff(cmd.Context(), r, args[0], args[1])
			if err != nil {
				return fmt.Errorf("cannot compare commits: %w", err)
			}
			if asJSON {
				j := diffJSON{Modified: []string{}, Removed: []string{}, Added: []string{}}
				j.Modified = append(j.Modified, d.Modified...)
				j.Removed = append(j.Removed, d.Removed...)
				j.Added = append(j.Added, d.Added...)
				return writeJSON(cmd.OutOrStdout(), j)
			}
			var b strings.Builder
			for _, l := range []struct {
				c     byte
				paths []string
			}{{'M', d.Modified}, {'D', d.Removed}, {'A', d.Added}} {
				for _, p := range l.paths {
					fmt.Fprintf(&b, "%c    %s\n", l.c, p)
				}
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), b.String())
			return err
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
