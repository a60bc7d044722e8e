//go:build peer && root

package interop

import (
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// awkwardSnapshot is the awkward source tree as scanned from disk.
var awkwardSnapshot = sync.OnceValues(func() (snapshot, error) {
	tree, err := awkwardTree()
	if err != nil {
		return nil, err
	}
	return scanTree(tree)
})

// TestFsckAcceptsPeerRepos runs each tool's fsck on the repositories the other tool wrote (and
// strata's on its own), in every mode.
func TestFsckAcceptsPeerRepos(t *testing.T) {
	peer(t)
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := pairFor(t, mode)
			tests := []struct {
				name   string
				writer func(t *testing.T, i int) string
				bin    string
				args   []string
			}{
				{name: "ostree fsck of strata's repo", writer: p.strataCommit, bin: "ostree", args: []string{"--repo=" + p.strata, "fsck"}},
				{name: "strata repo fsck of ostree's repo", writer: p.ostreeCommit, bin: strataBin, args: []string{"repo", "fsck", "--repo", p.ostree}},
				{name: "strata repo fsck of strata's repo", writer: p.strataCommit, bin: strataBin, args: []string{"repo", "fsck", "--repo", p.strata}},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					tc.writer(t, len(history)-1) // the whole history is in the repository
					res, err := run(tc.bin, tc.args...)
					if err != nil {
						t.Fatal(err)
					}
					if res.code != 0 {
						t.Errorf("%s = exit %d, want 0; output:\n%s", res.cmdline, res.code, res.output())
					}
				})
			}
		})
	}
}

// TestCheckoutAcrossTools checks out each tool's commit of the awkward tree with the other tool
// and compares the result with the source tree, minus what the mode cannot store: empty xattrs
// always, and owners, special bits and xattrs in bare-user-only. User-mode checkouts (ostree -U,
// strata --user-mode) of the same commit are compared with each other; from bare-user
// repositories, only up to the difference linkedFromBareUser describes.
func TestCheckoutAcrossTools(t *testing.T) {
	peer(t)
	t.Parallel()
	src, err := awkwardSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := pairFor(t, mode)
			want := src.forMode(mode)
			t.Run("ostree checkout of strata's commit", func(t *testing.T) {
				t.Parallel()
				strataCommit := p.strataCommit(t, 0)
				dest := filepath.Join(t.TempDir(), "co")
				mustOstree(t, "--repo="+p.strata, "checkout", strataCommit, dest)
				compareCheckout(t, "ostree checkout", want, dest)
			})
			t.Run("strata checkout of ostree's commit", func(t *testing.T) {
				t.Parallel()
				ostreeCommit := p.ostreeCommit(t, 0)
				dest := filepath.Join(t.TempDir(), "co")
				mustStrata(t, "repo", "checkout", "--repo", p.ostree, ostreeCommit, dest)
				compareCheckout(t, "strata repo checkout", want, dest)
			})
			t.Run("user mode", func(t *testing.T) {
				t.Parallel()
				ostreeCommit := p.ostreeCommit(t, 0)
				dir := t.TempDir()
				odest, sdest := filepath.Join(dir, "ostree"), filepath.Join(dir, "strata")
				mustOstree(t, "--repo="+p.ostree, "checkout", "-U", ostreeCommit, odest)
				mustStrata(t, "repo", "checkout", "--repo", p.ostree, "--user-mode", ostreeCommit, sdest)
				owant, err := scanTree(odest)
				if err != nil {
					t.Fatal(err)
				}
				sgot, err := scanTree(sdest)
				if err != nil {
					t.Fatal(err)
				}
				if mode == "bare-user" {
					owant, sgot = owant.linkedFromBareUser(), sgot.linkedFromBareUser()
				}
				if diffs := diffTrees(owant, sgot); len(diffs) > 0 {
					t.Errorf("strata repo checkout --user-mode differs from ostree checkout -U in %d ways:\n%s",
						len(diffs), summarizeDiffs(diffs, 25))
				}
			})
		})
	}
}

// compareCheckout scans dest and reports every difference from want.
func compareCheckout(t *testing.T, what string, want snapshot, dest string) {
	t.Helper()
	got, err := scanTree(dest)
	if err != nil {
		t.Fatal(err)
	}
	if diffs := diffTrees(want, got); len(diffs) > 0 {
		t.Errorf("%s differs from the expected tree in %d ways:\n%s", what, len(diffs), summarizeDiffs(diffs, 25))
	}
}

// TestInspectAcceptsStrataCommits requires ostree's log, show and ls to read strata's commits and
// print the same as for its own, and `strata repo ls -R` to print what `ostree ls -R` prints.
func TestInspectAcceptsStrataCommits(t *testing.T) {
	peer(t)
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			p := pairFor(t, mode)
			tests := []struct {
				name string
				args []string
			}{
				{name: "log", args: []string{"log", "main"}},
				{name: "show", args: []string{"show", "COMMIT"}},
				{name: "ls -R -C -X", args: []string{"ls", "-R", "-C", "-X", "COMMIT"}},
			}
			for _, tc := range tests {
				t.Run("ostree "+tc.name, func(t *testing.T) {
					t.Parallel()
					strataCommit, ostreeCommit := p.strataCommit(t, 0), p.ostreeCommit(t, 0)
					got := mustOstree(t, append([]string{"--repo=" + p.strata}, subst(tc.args, strataCommit)...)...)
					want := mustOstree(t, append([]string{"--repo=" + p.ostree}, subst(tc.args, ostreeCommit)...)...)
					if got != want {
						t.Errorf("ostree %s on strata's repo differs from on ostree's:\n%s",
							tc.name, lineDiff(want, got, 10))
					}
				})
			}
			t.Run("strata repo ls -R", func(t *testing.T) {
				t.Parallel()
				ostreeCommit := p.ostreeCommit(t, 0)
				want := mustOstree(t, "--repo="+p.ostree, "ls", "-R", ostreeCommit)
				got := mustStrata(t, "repo", "ls", "--repo", p.ostree, "-R", ostreeCommit)
				if got != want {
					t.Errorf("strata repo ls -R differs from ostree ls -R:\n%s", lineDiff(want, got, 10))
				}
			})
		})
	}
}

// subst replaces the word COMMIT in args.
func subst(args []string, commit string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = strings.ReplaceAll(a, "COMMIT", commit)
	}
	return out
}

// lineDiff shows the first differing lines of two outputs, want as "-" and got as "+", without
// attempting an alignment: listings here are in a fixed order.
func lineDiff(want, got string, limit int) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	var diffs []string
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			diffs = append(diffs, "line "+strconv.Itoa(i+1)+":\n- "+w+"\n+ "+g)
		}
	}
	return summarizeDiffs(diffs, limit)
}
