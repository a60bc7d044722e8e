//go:build peer && root

package interop

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommitMatchesOstree commits the same trees with the same subject, body, timestamp,
// metadata and parents through `strata repo commit` and `ostree commit`, in every mode, and
// requires the same commit checksums and refs.
func TestCommitMatchesOstree(t *testing.T) {
	peer(t)
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := pairFor(t, mode)
			for i, c := range history {
				t.Run(c.name, func(t *testing.T) {
					want := p.ostreeCommit(t, i)
					if got := p.strataCommit(t, i); got != want {
						t.Errorf("strata repo commit (%s) = %s, want %s as from ostree commit", c.name, got, want)
						explainCommitDiff(t, "strata's commit", p.strata, got, "ostree's commit", p.ostree, want)
					}
				})
			}
			t.Run("objects", func(t *testing.T) {
				for i := range min(len(p.strataCommits), len(p.ostreeCommits)) {
					got, want := p.strataCommits[i], p.ostreeCommits[i]
					if got != want {
						continue // reported above
					}
					t.Run(history[i].name, func(t *testing.T) {
						c := mustChecksum(t, got)
						compareReachable(t, mode, p.strata, c, p.ostree, c, true)
					})
				}
			})
			t.Run("refs", func(t *testing.T) {
				for _, ref := range []string{"main", "other/branch"} {
					got, gerr := os.ReadFile(filepath.Join(p.strata, "refs", "heads", ref))
					want, werr := os.ReadFile(filepath.Join(p.ostree, "refs", "heads", ref))
					if gerr != nil || werr != nil {
						t.Errorf("reading ref %s: strata repo: %v, ostree repo: %v", ref, gerr, werr)
						continue
					}
					if string(got) != string(want) {
						t.Errorf("refs/heads/%s = %q, want %q as written by ostree", ref, got, want)
					}
				}
			})
		})
	}
}

// explainCommitDiff logs what differs between two commits, as ostree sees them, so that a
// checksum mismatch points at the object responsible.
func explainCommitDiff(t *testing.T, gotName, gotRepo, got, wantName, wantRepo, want string) {
	t.Helper()
	for _, args := range [][]string{{"show", "--raw"}, {"ls", "-R", "-C", "-X"}} {
		g, gerr := ostreeOK(append([]string{"--repo=" + gotRepo}, append(args, got)...)...)
		w, werr := ostreeOK(append([]string{"--repo=" + wantRepo}, append(args, want)...)...)
		if gerr != nil || werr != nil {
			t.Logf("ostree %s: on %s: %v; on %s: %v", strings.Join(args, " "), gotName, gerr, wantName, werr)
			continue
		}
		gl, wl := strings.Split(g, "\n"), strings.Split(w, "\n")
		var diffs []string
		for i := 0; i < max(len(gl), len(wl)); i++ {
			var a, b string
			if i < len(gl) {
				a = gl[i]
			}
			if i < len(wl) {
				b = wl[i]
			}
			if a != b && !strings.HasPrefix(b, "commit ") {
				diffs = append(diffs, "- "+b+"\n+ "+a)
			}
		}
		t.Logf("ostree %s, %s (-) vs %s (+):\n%s", strings.Join(args, " "), wantName, gotName, summarizeDiffs(diffs, 10))
	}
}
