package repo

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// The commits in the ostree-written test vectors (docs/formats/vectors.md).
const (
	coVectorC1 = "4e5608541a7900d8b604541ec7ffa70700a6dd3aabc7e71e145a25ac5f306a28"
	coVectorC2 = "33551e1f5b855ffea3595aed5983953c687ec4e2f96f3d6d00648ffdd647c194"
)

// coMakeTree2 builds the input tree of commit C2 as inputs/mktree2.py does
// (docs/formats/vectors.md); owner 1000 for /xdir only when running as root.
func coMakeTree2(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree2")
	file := func(p string, data []byte, mode uint32) {
		t.Helper()
		full := filepath.Join(dir, p)
		coMust(t, os.WriteFile(full, data, 0o600))
		coMust(t, unix.Chmod(full, mode))
	}
	coMust(t, os.MkdirAll(filepath.Join(dir, "big"), 0o755))
	coMust(t, os.Mkdir(filepath.Join(dir, "xdir"), 0o700))
	coMust(t, os.Chmod(dir, 0o755))
	coMust(t, os.Chmod(filepath.Join(dir, "big"), 0o755))
	file("hello.txt", []byte("hello world\n"), 0o644)
	file("multi.txt", []byte("multi\n"), 0o600)
	for _, x := range [][2]string{{"user.zzz", "last"}, {"user.aaa", "first"}, {"user.empty", ""}} {
		coMust(t, unix.Setxattr(filepath.Join(dir, "multi.txt"), x[0], []byte(x[1]), 0))
	}
	coMust(t, unix.Setxattr(filepath.Join(dir, "xdir"), "user.dirattr", []byte("d"), 0))
	file("xdir/suid", []byte("\x00\x01binary\xff"), 0o4755)
	for i := 0; i < 3000; i++ {
		file(fmt.Sprintf("big/f%04d", i), []byte("same\n"), 0o644)
	}
	if os.Geteuid() == 0 {
		coMust(t, os.Lchown(filepath.Join(dir, "xdir"), 1000, 1000))
		coMust(t, os.Lchown(filepath.Join(dir, "xdir/suid"), 1000, 1000))
		coMust(t, unix.Chmod(filepath.Join(dir, "xdir/suid"), 0o4755)) // chown dropped it
	}
	return dir
}

// Checking out C2 from the repositories ostree wrote gives back the tree
// it was committed from. Non-root users can only make user-mode
// checkouts of it (its /xdir belongs to uid 1000); the root tier checks
// the full-ownership checkouts.
func TestCheckoutOstreeVectors(t *testing.T) {
	t.Parallel()
	vectors := testutil.Vectors(t)
	tree2 := coMakeTree2(t)
	for _, tc := range []struct {
		name, repo string
		mode       Mode
		linked     bool
	}{
		{"archive", "repo-archive", ModeArchive, false},
		{"bare-user", "repo-bare-user", ModeBareUser, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r, err := Open(filepath.Join(vectors, tc.repo))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			dest := filepath.Join(t.TempDir(), "c2")
			st, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{UserMode: true})
			if err != nil {
				t.Fatalf("Checkout(%s test/ref) = %v", tc.repo, err)
			}
			if st.Commit.String() != coVectorC2 || st.Files != 3003 || st.Dirs != 3 {
				t.Errorf("Checkout(%s test/ref) = %+v, want commit %s, 3003 files, 3 dirs", tc.repo, st, coVectorC2)
			}
			if (st.Hardlinked == st.Files) != tc.linked {
				t.Errorf("Checkout(%s test/ref) hardlinked %d of %d files, want all: %v", tc.repo, st.Hardlinked, st.Files, tc.linked)
			}
			coCompareTrees(t, tree2, dest, coExpect(tc.mode, true))
		})
	}
}
