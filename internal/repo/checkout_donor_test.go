package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// coDonorTree writes a small tree: a/x, a/y, b/c/d and e, each with a
// file; version decides the content of a/y/file.
func coDonorTree(t *testing.T, version string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	for p, c := range map[string]string{"a/x/file": "x\n", "a/y/file": version, "b/c/d/file": "d\n", "e/file": "e\n", "top": "top\n"} {
		p = filepath.Join(dir, p)
		coMust(t, os.MkdirAll(filepath.Dir(p), 0o755))
		coMust(t, os.WriteFile(p, []byte(c), 0o644))
	}
	return dir
}

func coIno(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	coMust(t, unix.Lstat(p, &st))
	return st.Ino
}

// TestCheckoutDonor checks out a commit with a donor, a checkout of a
// commit that differs in one file: the directories whose dirtree and
// dirmeta are the donor's (a/x, b, e) are moved from it, the others made;
// the result is the tree of the new commit, and the donor keeps only what
// was not taken.
func TestCheckoutDonor(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r := coNewRepo(t, mode)
			ctx := context.Background()
			v1 := coCommitDir(t, r, coDonorTree(t, "1\n"), "test/ref", "v1")
			tree2 := coDonorTree(t, "2\n")
			v2 := coCommitDir(t, r, tree2, "test/ref", "v2")
			donor := filepath.Join(t.TempDir(), "donor")
			t.Cleanup(func() { coMakeWritable(donor) })
			if _, err := Checkout(ctx, r, v1.String(), donor, CheckoutOptions{UserMode: true}); err != nil {
				t.Fatal(err)
			}
			moved := coIno(t, filepath.Join(donor, "b/c/d/file"))

			dest := filepath.Join(t.TempDir(), "checkout")
			t.Cleanup(func() { coMakeWritable(dest) })
			st, err := Checkout(ctx, r, v2.String(), dest, CheckoutOptions{UserMode: true, Donor: &CheckoutDonor{Dir: donor, Commit: v1}})
			if err != nil {
				t.Fatalf("Checkout(v2, donor v1) = %v", err)
			}
			coCompareTrees(t, tree2, dest, coExpect(mode, true))
			if st.Taken != 3 {
				t.Errorf("Checkout(v2, donor v1) took %d directories, want 3 (a/x, b, e)", st.Taken)
			}
			if got := coIno(t, filepath.Join(dest, "b/c/d/file")); got != moved {
				t.Errorf("b/c/d/file has inode %d, want the donor's %d (its directory moved)", got, moved)
			}
			if got := coNames(t, donor); got != "a top" {
				t.Errorf("the donor holds %q after the checkout, want \"a top\" (what was not taken)", got)
			}
			if got := coNames(t, filepath.Join(donor, "a")); got != "y" {
				t.Errorf("the donor's a/ holds %q, want \"y\"", got)
			}

			// A donor that is not there gives nothing, and the checkout
			// is whole all the same.
			dest2 := filepath.Join(t.TempDir(), "checkout2")
			t.Cleanup(func() { coMakeWritable(dest2) })
			if st, err := Checkout(ctx, r, v2.String(), dest2, CheckoutOptions{UserMode: true, Donor: &CheckoutDonor{Dir: filepath.Join(donor, "none"), Commit: v1}}); err != nil || st.Taken != 0 {
				t.Fatalf("Checkout(v2, missing donor) = %+v, %v; want a whole checkout, nothing taken", st, err)
			}
			coCompareTrees(t, tree2, dest2, coExpect(mode, true))
		})
	}
}

// coNames lists the names in dir, space-separated.
func coNames(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	coMust(t, err)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return strings.Join(names, " ")
}
