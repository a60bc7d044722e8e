package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// The inspection commands (log, show, refs, ls, cat, diff) print text in
// the shape of the matching ostree command, so that scripts and eyes used
// to ostree read them unchanged, and stable JSON with --json.
//
// JSON field names are snake_case everywhere ("content_checksum",
// "symlink_target"), checksums are 64-character hex strings, times are
// both "timestamp" (Unix seconds) and "date" (RFC 3339, UTC), and lists
// are [] rather than null when empty.

func newCommitJSON(sum ostree.Checksum, cm *ostree.Commit) commitJSON {
	j := commitJSON{
		Checksum:        sum.String(),
		ContentChecksum: cm.ContentChecksum().String(),
		Timestamp:       cm.Timestamp,
		Date:            cm.Time().Format(time.RFC3339),
		Version:         cm.Version(),
		Subject:         cm.Subject,
		Body:            cm.Body,
	}
	if !cm.Parent.IsZero() {
		j.Parent = cm.Parent.String()
	}
	return j
}

func newRepoLogCmd() *cobra.Command {
	var (
		path   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "log --repo R REV [--json]",
		Short: "Show the history of a commit, newest first",
		Long: `Print REV (a ref or commit checksum) and its ancestors, like ostree log. The
history stops at a commit without parent, or at a parent that is not in the
repository ("<< History beyond this commit not fetched >>").`,
		Args:              argNames("REV"),
		ValidArgsFunction: completeRevs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			h, err := repo.Log(cmd.Context(), r, args[0])
			if err != nil {
				return fmt.Errorf("cannot show history: %w", err)
			}
			if asJSON {
				j := logJSON{Commits: []commitJSON{}, Truncated: h.Truncated}
				for _, e := range h.Commits {
					j.Commits = append(j.Commits, newCommitJSON(e.Checksum, e.Commit))
				}
				return writeJSON(cmd.OutOrStdout(), j)
			}
			return printLog(cmd.OutOrStdout(), h)
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func printLog(w io.Writer, h repo.History) error {
	var b strings.Builder
	for _, e := range h.Commits {
		formatCommit(&b, e.Checksum, e.Commit)
	}
	if h.Truncated {
		b.WriteString("<< History beyond this commit not fetched >>\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// formatCommit writes a commit as ostree's ot_dump_object does for log and
// show (2022.7): header lines, then the subject and body indented by four
// spaces, each after a blank line, then a blank line.
func formatCommit(b *strings.Builder, sum ostree.Checksum, cm *ostree.Commit) {
	fmt.Fprintf(b, "commit %s\n", sum)
	if !cm.Parent.IsZero() {
		fmt.Fprintf(b, "Parent:  %s\n", cm.Parent)
	}
	fmt.Fprintf(b, "ContentChecksum:  %s\n", cm.ContentChecksum())
	fmt.Fprintf(b, "Date:  %s\n", cm.Time().Format("2006-01-02 15:04:05 +0000"))
	if v := cm.Version(); v != "" {
		fmt.Fprintf(b, "Version: %s\n", v)
	}
	if cm.Subject != "" {
		b.WriteString("\n")
		indentLines(b, cm.Subject)
	} else {
		b.WriteString("(no subject)\n")
	}
	if cm.Body != "" {
		b.WriteString("\n")
		indentLines(b, cm.Body)
	}
	b.WriteString("\n")
}

// indentLines is ostree's dump_indented_lines: every line, empty ones
// included, gets four spaces; a final line without newline gets one.
func indentLines(b *strings.Builder, s string) {
	for {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			if s != "" {
				b.WriteString("    " + s + "\n")
			}
			return
		}
		b.WriteString("    " + s[:i+1])
		s = s[i+1:]
	}
}
