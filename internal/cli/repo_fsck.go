package cli

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

func newRepoFsckCmd() *cobra.Command {
	var (
		path        string
		trustedKeys []string
		asJSON      bool
	)
	cmd := &cobra.Command{
		Use:   "fsck --repo R [--trusted-key FILE]... [--json]",
		Short: "Verify every object, ref and commit tree of a repository",
		Long: `Check every loose object (metadata must hash to its name and parse; content
objects are re-hashed from what the repository mode stores), that every ref
names a stored commit, and that the tree of every commit is complete. Objects
missing only from partial commits (interrupted or metadata-only pulls) are
listed but are not errors. With --trusted-key, every commit reachable from a
ref must carry a valid ed25519 signature by one of the keys of those files.

Prints one line per problem and a summary; exits 4 (corrupt data) if an object
is damaged, missing or unreadable, 1 if only signatures are missing.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := repo.FsckOptions{}
			if len(trustedKeys) > 0 {
				verify, err := fsckCommitVerifier(trustedKeys)
				if err != nil {
					return err
				}
				opts.VerifyCommit = verify
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			bar := newProgress(cmd, "fsck", -1, false)
			opts.Progress = bar
			rep, err := repo.Fsck(cmd.Context(), r, opts)
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot verify repository %s: %w", path, err)
			}
			if asJSON {
				if err := writeJSON(cmd.OutOrStdout(), fsckToJSON(rep)); err != nil {
					return err
				}
			} else {
				printFsck(cmd.OutOrStdout(), rep, len(trustedKeys) > 0)
			}
			if !rep.OK() {
				// Damaged or missing objects are corrupt data (exit 4);
				// unsigned commits alone fail a precondition (exit 1).
				class := errdefs.ErrFailedPrecondition
				if rep.Errors() > rep.Count(repo.FsckSignature) {
					class = errdefs.ErrCorrupt
				}
				return fmt.Errorf("cannot verify repository %s: %s: %w", path, problemSummary(rep), class)
			}
			return nil
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringArrayVar(&trustedKeys, "trusted-key", nil, "file of trusted ed25519 public keys (as `strata repo keygen` writes them): every commit reachable from a ref must be signed by one (repeatable)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// printFsck prints one line per problem, then a summary in the manner of
// `ostree fsck`.
func printFsck(w io.Writer, rep *repo.FsckReport, signatures bool) {
	for _, p := range rep.Problems {
		fmt.Fprintln(w, p.String())
	}
	fmt.Fprintf(w, "Checked %d objects (%s), %d refs, %d commits", rep.Objects, objectTypeCounts(rep.ObjectsByType), rep.Refs, rep.Commits)
	if rep.PartialCommits > 0 {
		fmt.Fprintf(w, " (%d partial, not complete)", rep.PartialCommits)
	}
	fmt.Fprintln(w)
	if signatures {
		fmt.Fprintf(w, "Verified signatures of %d commits\n", rep.Verified)
	}
	if n := rep.Count(repo.FsckPartial); n > 0 {
		fmt.Fprintf(w, "%d objects missing from partial commits (expected)\n", n)
	}
	if rep.OK() {
		fmt.Fprintln(w, "No problems found")
	} else {
		fmt.Fprintf(w, "%s\n", problemSummary(rep))
	}
}

func objectTypeCounts(m map[ostree.ObjectType]int64) string {
	types := make([]ostree.ObjectType, 0, len(m))
	for t := range m {
		types = append(types, t)
	}
	sort.Slice(types, func(i, j int) bool { return types[i] < types[j] })
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%d %s", m[t], t)
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// problemSummary says how many problems of which kinds, e.g.
// "3 problems (2 corrupt, 1 missing)".
func problemSummary(rep *repo.FsckReport) string {
	kinds := []repo.FsckProblemKind{repo.FsckCorrupt, repo.FsckMissing, repo.FsckUnreadable, repo.FsckSignature}
	var parts []string
	for _, k := range kinds {
		if n := rep.Count(k); n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, k))
		}
	}
	n := rep.Errors()
	noun := "problems"
	if n == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("%d %s (%s)", n, noun, strings.Join(parts, ", "))
}

func fsckToJSON(rep *repo.FsckReport) fsckJSON {
	out := fsckJSON{
		OK: rep.OK(), Objects: rep.Objects, ObjectsByType: map[string]int64{}, Bytes: rep.Bytes,
		Refs: rep.Refs, Commits: rep.Commits, PartialCommits: rep.PartialCommits, Verified: rep.Verified,
		Problems: []fsckProblemJSON{},
	}
	for t, n := range rep.ObjectsByType {
		out.ObjectsByType[t.String()] = n
	}
	for _, p := range rep.Problems {
		j := fsckProblemJSON{Kind: string(p.Kind), Error: p.IsError(), Ref: p.Ref, Path: p.Path, Reason: p.Reason, Message: p.String()}
		if p.Object.Type != 0 {
			j.Object, j.Type = p.Object.Checksum.String(), p.Object.Type.String()
		}
		if !p.Commit.IsZero() {
			j.Commit = p.Commit.String()
		}
		out.Problems = append(out.Problems, j)
	}
	return out
}

// fsckCommitVerifier builds the signature check for --trusted-key: an
// ed25519 signature by one of the file's keys must be among the commit's
// detached signatures.
func fsckCommitVerifier(keyFiles []string) (func(ostree.Checksum, []byte, []byte) error, error) {
	keys, err := sign.LoadTrustedKeyFiles(keyFiles...)
	if err != nil {
		return nil, fmt.Errorf("cannot read trusted keys: %w", err)
	}
	v := sign.NewEd25519Verifier(keys, nil)
	return func(_ ostree.Checksum, commit, detached []byte) error {
		_, err := sign.Verify(commit, detached, v)
		return err
	}, nil
}
