//go:build root

package repo

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// As root the awkward tree also has other owners, setuid and setgid files,
// setgid and sticky directories and mode-0000 entries; every mode must give
// them back (or drop them, in user mode) exactly.
func TestCheckoutRoundTripRoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tree := coMakeTree(t, coAwkward{root: true})
	for _, tc := range coCheckoutCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			coCheckoutAndCompare(t, tree, tc.mode, tc.user, tc.linked)
		})
	}
}

// Full-ownership checkouts of C2 from the repositories ostree wrote: owner
// 1000, the setuid bit and the xattrs come back.
func TestCheckoutOstreeVectorsRoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	vectors := testutil.Vectors(t)
	tree2 := coMakeTree2(t)
	for _, name := range []string{"repo-archive", "repo-bare-user"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r, err := Open(filepath.Join(vectors, name))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			dest := filepath.Join(t.TempDir(), "c2")
			if _, err := Checkout(context.Background(), r, coVectorC2, dest, CheckoutOptions{}); err != nil {
				t.Fatalf("Checkout(%s %s) = %v", name, coVectorC2, err)
			}
			coCompareTrees(t, tree2, dest, func(string, *coNode) {})
		})
	}
}

// A bare checkout onto another filesystem cannot hardlink (EXDEV) and
// copies instead.
func TestCheckoutCrossDevice(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tree := coMakeTree(t, coAwkward{root: true})
	r := coNewRepo(t, ModeBare)
	coCommitDir(t, r, tree, "test/ref", "awkward")
	shm, err := os.MkdirTemp("/dev/shm", "strata-checkout-")
	if err != nil {
		t.Fatalf("a tmpfs for the cross-device checkout: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(shm) })
	if coDevice(t, r.Path()) == coDevice(t, shm) {
		t.Fatalf("/dev/shm is on the same filesystem as %s", r.Path())
	}
	dest := filepath.Join(shm, "checkout")
	st, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{})
	if err != nil {
		t.Fatalf("Checkout(to tmpfs) = %v", err)
	}
	if st.Hardlinked != 0 || st.Copied != st.Files {
		t.Errorf("Checkout(to tmpfs) hardlinked %d, copied %d of %d files, want all copied", st.Hardlinked, st.Copied, st.Files)
	}
	coCompareTrees(t, tree, dest, func(string, *coNode) {})
}

func coDevice(t *testing.T, p string) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st.Dev
}
