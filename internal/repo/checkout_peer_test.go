//go:build peer

package repo

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// coOstree runs the ostree binary and fails the test on error.
func coOstree(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(testutil.Ostree(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %v: %v\n%s", args, err, out)
	}
}

// Strata's checkout of an ostree-written repository equals ostree's own
// checkout of it, in every mode: same entries, types, modes, owners,
// sizes, contents, symlink targets, xattrs, and directory mtimes 0.
func TestCheckoutMatchesOstree(t *testing.T) {
	t.Parallel()
	root := os.Geteuid() == 0
	tree := coMakeTree(t, coAwkward{root: root})
	type modeCase struct {
		name   string
		mode   Mode
		commit []string // extra ostree commit flags
	}
	modes := []modeCase{
		{"archive", ModeArchive, nil},
		{"bare-user", ModeBareUser, nil},
		{"bare-user-only", ModeBareUserOnly, []string{"--canonical-permissions"}},
	}
	if root {
		modes = append(modes, modeCase{"bare", ModeBare, nil})
	}
	for _, mc := range modes {
		for _, user := range []bool{false, true} {
			name := mc.name
			if user {
				name += " user mode"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				repoPath := filepath.Join(t.TempDir(), "repo")
				coOstree(t, "--repo="+repoPath, "init", "--mode="+string(mc.mode))
				coOstree(t, append([]string{"--repo=" + repoPath, "commit", "-b", "test/ref", "--tree=dir=" + tree,
					"--timestamp=2023-01-01 00:00:00 UTC", "-s", "awkward"}, mc.commit...)...)
				theirs := filepath.Join(t.TempDir(), "ostree")
				args := []string{"--repo=" + repoPath, "checkout"}
				if user {
					args = append(args, "-U")
				}
				coOstree(t, append(args, "test/ref", theirs)...)
				t.Cleanup(func() { coMakeWritable(theirs) })

				r, err := Open(repoPath)
				if err != nil {
					t.Fatal(err)
				}
				defer r.Close()
				ours := filepath.Join(t.TempDir(), "strata")
				t.Cleanup(func() { coMakeWritable(ours) })
				if _, err := Checkout(context.Background(), r, "test/ref", ours, CheckoutOptions{UserMode: user}); err != nil {
					t.Fatalf("Checkout() = %v", err)
				}
				want, got := coScanNoObjMeta(t, theirs), coScanNoObjMeta(t, ours)
				if mc.mode == ModeBareUser && user {
					// ostree hardlinks every bare-user regular file, so its
					// checkout shows the storage mode (mode & 0775) | 0400;
					// strata copies the files whose stored mode differs.
					for p, n := range got {
						if n.Type == "file" {
							n.Perm = n.Perm&0o775 | 0o400
							got[p] = n
						}
					}
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("strata checkout differs from ostree's (-ostree +strata):\n%s", diff)
				}
				coCompareDirMtimes(t, theirs, ours)
			})
		}
	}
}

func coScanNoObjMeta(t *testing.T, dir string) map[string]coNode {
	t.Helper()
	m := coScan(t, dir)
	for p, n := range m {
		delete(n.Xattrs, "user.ostreemeta")
		if len(n.Xattrs) == 0 {
			n.Xattrs = nil
		}
		m[p] = n
	}
	return m
}

// coCompareDirMtimes checks that directories have the same mtimes in both
// checkouts (ostree sets them to 0).
func coCompareDirMtimes(t *testing.T, theirs, ours string) {
	t.Helper()
	filepath.WalkDir(theirs, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(theirs, p)
		var a, b unix.Stat_t
		if unix.Lstat(p, &a) != nil || unix.Lstat(filepath.Join(ours, rel), &b) != nil {
			return nil
		}
		if a.Mtim != b.Mtim {
			t.Errorf("directory /%s: mtime %v in strata's checkout, %v in ostree's", rel, b.Mtim, a.Mtim)
		}
		return nil
	})
}
