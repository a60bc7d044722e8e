package cli

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/repo"
)

func newRepoPruneCmd() *cobra.Command {
	var (
		path           string
		depth          int
		dryRun, asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "prune --repo R [--depth N] [--dry-run] [--json]",
		Short: "Delete objects that no ref needs",
		Long: `Delete every object not reachable from a ref (refs/heads, deployment refs
included, refs/remotes and refs/mirrors), keeping N parents of each ref's
commit (--depth -1, the default, keeps all history; 0 keeps only the commits
the refs name). Commits beyond the depth go with their detached metadata and
every object only they used; stale commitpartial markers and tmp/ leftovers
of interrupted transactions go too. Waits for running transactions.

--dry-run lists what would be deleted and deletes nothing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if depth < repo.KeepAllHistory {
				return usagef("--depth %d: want -1 (all history) or a number of parents >= 0", depth)
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			st, err := repo.Prune(cmd.Context(), r, repo.PruneOptions{Depth: depth, DryRun: dryRun})
			if err != nil {
				return fmt.Errorf("cannot prune repository %s: %w", path, err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), pruneToJSON(st))
			}
			printPrune(cmd.OutOrStdout(), st)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().IntVar(&depth, "depth", repo.KeepAllHistory, "parents of each ref's commit to keep; -1 keeps all")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "report what would be deleted, delete nothing")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the result as JSON")
	return cmd
}

// printPrune prints a summary like `ostree prune`'s; a dry run lists
// every object it would delete first.
func printPrune(w io.Writer, st repo.PruneStats) {
	verb := "Deleted"
	if st.DryRun {
		verb = "Would delete"
		for _, n := range st.Deleted {
			fmt.Fprintf(w, "would delete %s\n", n)
		}
	}
	fmt.Fprintf(w, "Total objects: %d\n", st.Objects)
	if len(st.Deleted) == 0 {
		fmt.Fprintln(w, "No unreachable objects")
	} else {
		fmt.Fprintf(w, "%s %d objects (%d commits), %s freed\n", verb, len(st.Deleted), st.Commits, humanBytes(st.Bytes))
	}
	if len(st.Markers) > 0 {
		fmt.Fprintf(w, "%s %d stale commitpartial markers\n", verb, len(st.Markers))
	}
	if len(st.Tmp) > 0 {
		fmt.Fprintf(w, "%s %d stale entries of tmp/\n", verb, len(st.Tmp))
	}
}

// humanBytes renders a byte count the way ostree prune does ("12.3 MB",
// decimal units).
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d bytes", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}

func pruneToJSON(st repo.PruneStats) pruneJSON {
	out := pruneJSON{
		DryRun: st.DryRun, Objects: st.Objects, Reachable: st.Reachable, Deleted: len(st.Deleted),
		DeletedCommits: st.Commits, Bytes: st.Bytes,
		DeletedObjects: []prunedObjectJSON{}, Markers: []string{}, Tmp: []string{},
	}
	for _, n := range st.Deleted {
		out.DeletedObjects = append(out.DeletedObjects, prunedObjectJSON{Object: n.Checksum.String(), Type: n.Type.String()})
	}
	for _, c := range st.Markers {
		out.Markers = append(out.Markers, c.String())
	}
	out.Tmp = append(out.Tmp, st.Tmp...)
	return out
}
