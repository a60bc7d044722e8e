package cli

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/delta"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

func newRepoSummaryCmd() *cobra.Command {
	var (
		path, keyFile string
		view, asJSON  bool
		deltas        int
		scratch       bool
	)
	cmd := &cobra.Command{
		Use:   "summary --repo R [--sign-key FILE] [--view] [--json]",
		Short: "Write the summary file (the index of refs clients fetch first), optionally signed",
		Long: `Regenerate the repository's summary file from its local refs (refs/heads), as
ostree summary -u does, and remove any summary.sig, which signed the old one.
With --sign-key, write a new summary.sig with an ed25519 signature by that key.
Every static delta in deltas/ is listed; --generate-deltas N first writes the
missing deltas to each ref's head from its N previous commits (so a client that
skipped releases still gets one delta), --generate-scratch-deltas the delta from
empty for first pulls.

--view prints the current summary instead of regenerating it; --json prints
it as JSON (after regenerating it, unless --view).`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if view && keyFile != "" {
				return usagef("--view shows the current summary and cannot sign: drop --view or --sign-key")
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			if !view {
				if deltas > 0 || scratch {
					wrote, err := delta.GenerateForRefs(cmd.Context(), r, deltas, scratch, delta.Options{})
					if err != nil {
						return fmt.Errorf("cannot generate static deltas: %w", err)
					}
					for _, n := range wrote {
						fmt.Fprintf(cmd.ErrOrStderr(), "Generated static delta %s\n", n)
					}
				}
				// The delta indexes come first: the summary announces them.
				if err := delta.Reindex(r); err != nil {
					return fmt.Errorf("cannot index the static deltas: %w", err)
				}
				opts := repo.SummaryOptions{StaticDeltas: func() ([]gvariant.DictEntry, error) {
					d, err := delta.Digests(r)
					return delta.DigestMap(d), err
				}}
				if keyFile != "" {
					key, err := sign.LoadSecretKey(keyFile)
					if err != nil {
						return fmt.Errorf("cannot sign the summary: %w", err)
					}
					opts.Sign = func(data []byte) ([]byte, error) {
						return sign.Append(nil, data, sign.NewEd25519Signer(key))
					}
				}
				if _, err := r.RegenerateSummary(opts); err != nil {
					return fmt.Errorf("cannot write the summary: %w", err)
				}
				if !asJSON {
					return nil
				}
			}
			data, sig, err := r.ReadSummary()
			if err != nil {
				return fmt.Errorf("cannot read the summary: %w", err)
			}
			s, err := ostree.ParseSummary(data)
			if err != nil {
				return fmt.Errorf("cannot read the summary: %w", err)
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), summaryToJSON(s, sig != nil))
			}
			printSummary(cmd.OutOrStdout(), s, sig != nil)
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&keyFile, "sign-key", "", "sign the summary with this ed25519 secret key file (strata repo keygen)")
	cmd.Flags().BoolVar(&view, "view", false, "print the current summary instead of regenerating it")
	cmd.Flags().IntVar(&deltas, "generate-deltas", 0, "first generate the missing static deltas to each ref's head from its last N commits")
	cmd.Flags().BoolVar(&scratch, "generate-scratch-deltas", false, "first generate the missing static delta from empty to each ref's head")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the summary as JSON")
	return cmd
}

func beTime(v ostree.Metadata, key string) (time.Time, bool) {
	e, ok := v.Get(key)
	if !ok {
		return time.Time{}, false
	}
	if _, isT := e.Value.(uint64); !isT {
		return time.Time{}, false
	}
	ts := ostree.SummaryRef{Metadata: ostree.Metadata{{Key: ostree.SummaryCommitTimestamp, Value: e}}}.Timestamp()
	return time.Unix(int64(ts), 0).UTC(), true
}

func boolMeta(m ostree.Metadata, key string) bool {
	v, ok := m.Get(key)
	b, _ := v.Value.(bool)
	return ok && b
}

func summaryToJSON(s *ostree.Summary, signed bool) summaryJSON {
	out := summaryJSON{
		Refs:             []summaryRefJSON{},
		Mode:             s.Metadata.String(ostree.SummaryMode),
		TombstoneCommits: boolMeta(s.Metadata, ostree.SummaryTombstones),
		IndexedDeltas:    boolMeta(s.Metadata, ostree.SummaryIndexedDeltas),
		Signed:           signed,
	}
	if t, ok := beTime(s.Metadata, ostree.SummaryLastModified); ok {
		out.LastModified = t.Format(time.RFC3339)
	}
	for _, r := range s.Refs {
		e := summaryRefJSON{Name: r.Name, Commit: r.Checksum.String(), CommitSize: r.CommitSize,
			Version: r.Metadata.String(ostree.SummaryCommitVersion)}
		if t, ok := beTime(r.Metadata, ostree.SummaryCommitTimestamp); ok {
			e.Timestamp = t.Format(time.RFC3339)
		}
		out.Refs = append(out.Refs, e)
	}
	return out
}

// printSummary prints a summary the way `ostree summary --view` does.
func printSummary(w io.Writer, s *ostree.Summary, signed bool) {
	for _, r := range s.Refs {
		fmt.Fprintf(w, "* %s\n    Latest Commit (%d bytes):\n      %s\n", r.Name, r.CommitSize, r.Checksum)
		if v := r.Metadata.String(ostree.SummaryCommitVersion); v != "" {
			fmt.Fprintf(w, "    Version (%s): %s\n", ostree.SummaryCommitVersion, v)
		}
		if t, ok := beTime(r.Metadata, ostree.SummaryCommitTimestamp); ok {
			fmt.Fprintf(w, "    Timestamp (%s): %s\n", ostree.SummaryCommitTimestamp, t.Format(time.RFC3339))
		}
		fmt.Fprintln(w)
	}
	for _, e := range s.Metadata {
		key, _ := e.Key.(string)
		switch key {
		case ostree.SummaryMode:
			fmt.Fprintf(w, "Repository Mode (%s): %s\n", key, s.Metadata.String(key))
		case ostree.SummaryLastModified:
			t, _ := beTime(s.Metadata, key)
			fmt.Fprintf(w, "Last-Modified (%s): %s\n", key, t.Format(time.RFC3339))
		case ostree.SummaryTombstones:
			yes := map[bool]string{true: "Yes", false: "No"}[boolMeta(s.Metadata, key)]
			fmt.Fprintf(w, "Has Tombstone Commits (%s): %s\n", key, yes)
		default:
			v, _ := s.Metadata.Get(key)
			fmt.Fprintf(w, "%s: %v\n", key, v.Value)
		}
	}
	if signed {
		fmt.Fprintf(w, "Signed (%s): yes\n", repo.SummarySigFile)
	}
}
