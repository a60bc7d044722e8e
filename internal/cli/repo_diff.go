package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/repo"
)

// packageDiff compares the strata.packages metadata of two revisions; nil
// when either commit has none.
func packageDiff(r *repo.Repo, revA, revB string) (*compose.PackageDiff, error) {
	var lists [2][]compose.Package
	for i, rev := range []string{revA, revB} {
		c, err := r.ResolveRev(rev)
		if err != nil {
			return nil, err
		}
		cm, err := r.ReadCommit(c)
		if err != nil {
			return nil, err
		}
		pkgs, ok, err := compose.CommitPackages(cm.Metadata)
		if err != nil || !ok {
			return nil, err
		}
		lists[i] = pkgs
	}
	d := compose.DiffPackages(lists[0], lists[1])
	return &d, nil
}

func newRepoDiffCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "diff --repo R [REVA] REVB [--json]",
		Short: "List the paths that differ between two commits",
		Long: `Compare the trees of REVA and REVB like ostree diff: "M    PATH" for a file or
directory whose content or metadata changed, "D    PATH" for one only in REVA
(a removed directory is listed alone), "A    PATH" for one only in REVB (an added
directory with everything below it). A changed root directory is "M    /".

When both commits were made by strata compose (they carry strata.packages),
a blank line and the package changes follow the paths: "Upgraded:",
"Downgraded:", "Removed:" and "Added:" sections of "  NAME VERSION" lines
("  NAME OLD -> NEW" for a changed version).

With one revision, as ostree diff REV, it is compared with its parent (REV^).`,
		Args:              argNames("REV", "[REV2]"),
		ValidArgsFunction: completeRevs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			from, to := args[0]+"^", args[0]
			if len(args) == 2 {
				from, to = args[0], args[1]
			}
			d, err := repo.Diff(cmd.Context(), r, from, to)
			if err != nil {
				return fmt.Errorf("cannot compare commits: %w", err)
			}
			pd, err := packageDiff(r, from, to)
			if err != nil {
				return fmt.Errorf("cannot compare packages: %w", err)
			}
			if asJSON {
				j := diffJSON{Modified: []string{}, Removed: []string{}, Added: []string{}}
				j.Modified = append(j.Modified, d.Modified...)
				j.Removed = append(j.Removed, d.Removed...)
				j.Added = append(j.Added, d.Added...)
				j.Packages = pd
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
			if pd != nil && !pd.Empty() {
				b.WriteString("\n" + pd.Format())
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), b.String())
			return err
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
