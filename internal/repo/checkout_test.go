package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// coExpect returns how a checkout transforms the source tree: user mode
// (and bare-user-only, which forces it) gives everything to the caller,
// drops setuid/setgid of files and makes them owner-readable, and applies
// no xattrs; bare-user-only stores canonical permissions (files and
// directories & 0755).
func coExpect(mode Mode, user bool) func(string, *coNode) {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	return func(_ string, n *coNode) {
		if mode == ModeBareUserOnly {
			user = true
			if n.Type != "symlink" {
				n.Perm &= 0o755
			}
		}
		if user {
			n.UID, n.GID, n.Xattrs = uid, gid, nil
			if n.Type == "file" {
				n.Perm = n.Perm&^(unix.S_ISUID|unix.S_ISGID) | unix.S_IRUSR
			}
		}
	}
}

// coCheckoutCases are the repository and checkout modes, with whether the
// checkout hardlinks objects.
var coCheckoutCases = []struct {
	name   string
	mode   Mode
	user   bool
	linked bool
}{
	{"archive", ModeArchive, false, false},
	{"archive user mode", ModeArchive, true, false},
	{"bare", ModeBare, false, true},
	{"bare user mode", ModeBare, true, false},
	{"bare-user", ModeBareUser, false, false},
	{"bare-user user mode", ModeBareUser, true, true},
	{"bare-user-only", ModeBareUserOnly, false, true},
	{"bare-user-only user mode", ModeBareUserOnly, true, true},
}

func TestCheckoutRoundTrip(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	for _, tc := range coCheckoutCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			coCheckoutAndCompare(t, tree, tc.mode, tc.user, tc.linked)
		})
	}
}

func coCheckoutAndCompare(t *testing.T, tree string, mode Mode, user, linked bool) {
	t.Helper()
	r := coNewRepo(t, mode)
	c := coCommitDir(t, r, tree, "test/ref", "awkward")
	dest := filepath.Join(t.TempDir(), "checkout")
	t.Cleanup(func() { coMakeWritable(dest) })
	var total, done atomic.Int64
	st, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{UserMode: user, Progress: coProgress{&total, &done}})
	if err != nil {
		t.Fatalf("Checkout(%s, user=%v) = %v", mode, user, err)
	}
	coCompareTrees(t, tree, dest, coExpect(mode, user))
	if st.Commit != c {
		t.Errorf("Checkout().Commit = %s, want %s", st.Commit, c)
	}
	entries := int64(len(coScan(t, tree)))
	if got := st.Dirs + st.Files; got != entries {
		t.Errorf("Checkout() dirs+files = %d, want %d", got, entries)
	}
	if st.Hardlinked+st.Copied != st.Files {
		t.Errorf("Checkout() hardlinked %d + copied %d != files %d", st.Hardlinked, st.Copied, st.Files)
	}
	if (st.Hardlinked > 0) != linked {
		t.Errorf("Checkout(%s, user=%v) hardlinked %d files, want hardlinks: %v", mode, user, st.Hardlinked, linked)
	}
	if linked && st.Verified+st.Stamped == 0 {
		t.Errorf("Checkout(%s, user=%v) checked no hardlinked object", mode, user)
	}
	if total.Load() != entries || done.Load() != entries {
		t.Errorf("progress total %d, done %d, want %d each", total.Load(), done.Load(), entries)
	}
}

// coProgress counts progress reports.
type coProgress struct{ total, done *atomic.Int64 }

func (p coProgress) SetTotal(n int64) { p.total.Store(n) }
func (p coProgress) Add(n int64)      { p.done.Add(n) }

func TestCheckoutHardlinksShareInodes(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	r := coNewRepo(t, ModeBareUser)
	coCommitDir(t, r, tree, "test/ref", "awkward")
	dest := filepath.Join(t.TempDir(), "checkout")
	t.Cleanup(func() { coMakeWritable(dest) })
	if _, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{UserMode: true}); err != nil {
		t.Fatalf("Checkout() = %v", err)
	}
	e, err := Lookup(r, mustResolve(t, r, "test/ref"), "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	var obj, got unix.Stat_t
	if err := unix.Stat(r.ObjectPath(e.Object()), &obj); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(filepath.Join(dest, "big.bin"), &got); err != nil {
		t.Fatal(err)
	}
	if obj.Ino != got.Ino || got.Mtim.Sec != 0 {
		t.Errorf("checked out big.bin: inode %d mtime %d, want the object's inode %d and mtime 0", got.Ino, got.Mtim.Sec, obj.Ino)
	}
	// 0666 is stored as 0664 in bare-user: a hardlink would have the wrong
	// mode, so it is copied (ostree links it, and its checkout says 0664).
	if err := unix.Stat(filepath.Join(dest, "world-writable"), &got); err != nil {
		t.Fatal(err)
	}
	if got.Nlink != 1 || got.Mode&0o7777 != 0o666 {
		t.Errorf("checked out world-writable: nlink %d mode %#o, want a copy with mode 0666", got.Nlink, got.Mode&0o7777)
	}
}

func mustResolve(t *testing.T, r *Repo, rev string) ostree.Checksum {
	t.Helper()
	c, err := r.ResolveRev(rev)
	if err != nil {
		t.Fatalf("ResolveRev(%s) = %v", rev, err)
	}
	return c
}

func TestCheckoutSubpath(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	r := coNewRepo(t, ModeArchive)
	coCommitDir(t, r, tree, "test/ref", "awkward")
	for _, tc := range []struct {
		name, subpath string
		want          string // source path that dest must equal
		file          bool
	}{
		{"directory", "/sp ace", "sp ace", false},
		{"nested directory", "deep/1/2", "deep/1/2", false},
		{"root", "/", "", false},
		{"file", "/xattr.txt", "xattr.txt", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "checkout")
			if _, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{Subpath: tc.subpath}); err != nil {
				t.Fatalf("Checkout(subpath %q) = %v", tc.subpath, err)
			}
			t.Cleanup(func() { coMakeWritable(dest) })
			if !tc.file {
				coCompareTrees(t, filepath.Join(tree, tc.want), dest, func(string, *coNode) {})
				return
			}
			got := coScan(t, dest)
			want := coScan(t, filepath.Join(tree, tc.want))["/"]
			if g := got["/"+tc.want]; g.SHA256 != want.SHA256 || g.Perm != want.Perm || len(got) != 2 {
				t.Errorf("Checkout(subpath %q) made %v, want DEST/%s like the source %+v", tc.subpath, got, tc.want, want)
			}
		})
	}
	dest := filepath.Join(t.TempDir(), "missing")
	_, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{Subpath: "/no/such"})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Checkout(subpath /no/such) = %v, want ErrNotFound", err)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("Checkout(subpath /no/such) left %s behind", dest)
	}
}

func TestCheckoutDestination(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	r := coNewRepo(t, ModeArchive)
	coCommitDir(t, r, tree, "test/ref", "awkward")
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dest string)
		wantErr error // nil: the checkout must succeed
	}{
		{"new", func(*testing.T, string) {}, nil},
		{"empty directory", func(t *testing.T, dest string) { coMust(t, os.Mkdir(dest, 0o755)) }, nil},
		{"non-empty directory", func(t *testing.T, dest string) {
			coMust(t, os.Mkdir(dest, 0o755))
			coMust(t, os.WriteFile(filepath.Join(dest, "keep"), []byte("mine"), 0o644))
		}, errdefs.ErrAlreadyExists},
		{"file", func(t *testing.T, dest string) { coMust(t, os.WriteFile(dest, []byte("mine"), 0o644)) }, errdefs.ErrAlreadyExists},
		{"symlink to a directory", func(t *testing.T, dest string) {
			coMust(t, os.Mkdir(dest+".target", 0o755))
			coMust(t, os.Symlink(filepath.Base(dest)+".target", dest))
		}, errdefs.ErrAlreadyExists},
		{"missing parent", func(*testing.T, string) {}, unix.ENOENT},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "checkout")
			if tc.name == "missing parent" {
				dest = filepath.Join(t.TempDir(), "no", "checkout")
			}
			tc.prepare(t, dest)
			before := coListDir(t, filepath.Dir(dest))
			_, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{})
			t.Cleanup(func() { coMakeWritable(dest) })
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("Checkout() = %v", err)
				}
				coCompareTrees(t, tree, dest, func(string, *coNode) {})
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Checkout() = %v, want %v", err, tc.wantErr)
			}
			if after := coListDir(t, filepath.Dir(dest)); after != before {
				t.Errorf("Checkout() changed the destination's parent: %s, was %s", after, before)
			}
		})
	}
}

func coMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// coListDir describes a directory's entries (names, types, sizes) and
// those of its direct subdirectories, or "" if it does not exist.
func coListDir(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, _ := d.Info()
		b.WriteString(p + " " + d.Type().String())
		if info != nil && d.Type().IsRegular() {
			b.WriteString(" " + string(rune('0'+info.Size()%10)))
		}
		b.WriteString("\n")
		return nil
	})
	return b.String()
}

func TestCheckoutCanceled(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	r := coNewRepo(t, ModeArchive)
	coCommitDir(t, r, tree, "test/ref", "awkward")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dest := filepath.Join(t.TempDir(), "checkout")
	_, err := Checkout(ctx, r, "test/ref", dest, CheckoutOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Checkout(canceled) = %v, want context.Canceled", err)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("Checkout(canceled) left %s behind", dest)
	}
}

func TestCheckoutUnknownRev(t *testing.T) {
	t.Parallel()
	r := coNewRepo(t, ModeArchive)
	dest := filepath.Join(t.TempDir(), "checkout")
	_, err := Checkout(context.Background(), r, "no/such/ref", dest, CheckoutOptions{})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Checkout(no/such/ref) = %v, want ErrNotFound", err)
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("Checkout(no/such/ref) created %s", dest)
	}
}
