package repo

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

// coDamage damages a loose object file: "flip" inverts its last byte,
// "truncate" cuts it in half, "delete" removes it.
func coDamage(t *testing.T, path, how string) {
	t.Helper()
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	switch how {
	case "flip":
		b[len(b)-1] ^= 0xff
		err = os.WriteFile(path, b, 0o644)
	case "truncate":
		err = os.Truncate(path, int64(len(b)/2))
	case "delete":
		err = os.Remove(path)
	}
	if err != nil {
		t.Fatal(err)
	}
}

func TestCheckoutDamagedObject(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	type target struct {
		what string // a path in the tree
		obj  func(e *WalkEntry) ostree.ObjectName
	}
	content := target{"/big.bin", func(e *WalkEntry) ostree.ObjectName { return e.Object() }}
	dirtree := target{"/deep/1/2", func(e *WalkEntry) ostree.ObjectName { return e.Object() }}
	dirmeta := target{"/private", func(e *WalkEntry) ostree.ObjectName {
		return ostree.ObjectName{Checksum: e.Meta, Type: ostree.ObjectDirMeta}
	}}
	for _, mc := range []struct {
		name string
		mode Mode
		user bool
	}{
		{"archive", ModeArchive, false},
		{"bare", ModeBare, false},
		{"bare-user copy", ModeBareUser, false},
		{"bare-user hardlink", ModeBareUser, true},
	} {
		for _, tc := range []struct {
			name    string
			target  target
			how     string
			wantErr error
		}{
			{"content flipped", content, "flip", errdefs.ErrCorrupt},
			{"content truncated", content, "truncate", errdefs.ErrCorrupt},
			{"content deleted", content, "delete", errdefs.ErrNotFound},
			{"dirtree flipped", dirtree, "flip", errdefs.ErrCorrupt},
			{"dirtree deleted", dirtree, "delete", errdefs.ErrNotFound},
			{"dirmeta truncated", dirmeta, "truncate", errdefs.ErrCorrupt},
			{"dirmeta deleted", dirmeta, "delete", errdefs.ErrNotFound},
		} {
			t.Run(mc.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				r := coNewRepo(t, mc.mode)
				c := coCommitDir(t, r, tree, "test/ref", "awkward")
				e, err := Lookup(r, c, tc.target.what)
				if err != nil {
					t.Fatal(err)
				}
				obj := tc.target.obj(e)
				coDamage(t, r.ObjectPath(obj), tc.how)
				dest := filepath.Join(t.TempDir(), "checkout")
				_, err = Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{UserMode: mc.user})
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("Checkout() with %s %s = %v, want %v", tc.how, obj, err, tc.wantErr)
				}
				if !strings.Contains(err.Error(), obj.Checksum.String()) {
					t.Errorf("Checkout() error %q does not name object %s", err, obj)
				}
				if _, err := os.Lstat(dest); !os.IsNotExist(err) {
					coMakeWritable(dest)
					t.Errorf("Checkout() failed but left %s behind", dest)
				}
			})
		}
	}
}

// Without verification a hardlink checkout never reads the objects it
// links, so damage to their content goes unnoticed: the trade-off that
// --verify=false makes.
func TestCheckoutNoVerifyLinks(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	r := coNewRepo(t, ModeBareUser)
	c := coCommitDir(t, r, tree, "test/ref", "awkward")
	e, err := Lookup(r, c, "/big.bin")
	if err != nil {
		t.Fatal(err)
	}
	coDamage(t, r.ObjectPath(e.Object()), "flip")
	for _, tc := range []struct {
		name     string
		noVerify bool
		wantErr  error
	}{
		{"verify", false, errdefs.ErrCorrupt},
		{"no verify", true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "checkout")
			t.Cleanup(func() { coMakeWritable(dest) })
			st, err := Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{UserMode: true, NoVerifyLinks: tc.noVerify})
			if !errors.Is(err, tc.wantErr) || (err == nil) != (tc.wantErr == nil) {
				t.Fatalf("Checkout(NoVerifyLinks=%v) = %v, want %v", tc.noVerify, err, tc.wantErr)
			}
			if err == nil && (st.Verified != 0 || st.Hardlinked == 0) {
				t.Errorf("Checkout(NoVerifyLinks) verified %d objects and linked %d, want 0 and some", st.Verified, st.Hardlinked)
			}
		})
	}
}

// A dirtree whose names would leave the directory is refused by the
// strict parse before anything is created from it.
func TestCheckoutRefusesEscapingNames(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"..", ".", "a/b", "../../etc"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := coNewRepo(t, ModeArchive)
			txn, err := r.Begin()
			if err != nil {
				t.Fatal(err)
			}
			f, err := txn.WriteContent(ostree.FileInfo{Mode: ostree.ModeReg | 0o644}, strings.NewReader("escaped\n"), 8, nil)
			if err != nil {
				t.Fatal(err)
			}
			meta, err := txn.WriteMetadata(ostree.ObjectDirMeta, ostree.DirMeta{Mode: ostree.ModeDir | 0o755}.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			// Marshal does not validate names; a hostile repository can hold
			// anything, with a matching checksum.
			evil := ostree.DirTree{Files: []ostree.TreeFile{{Name: name, Checksum: f}}}
			tree, err := txn.WriteMetadata(ostree.ObjectDirTree, evil.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			sub := ostree.DirTree{Dirs: []ostree.TreeDir{{Name: "sub", Tree: tree, Meta: meta}}}
			root, err := txn.WriteMetadata(ostree.ObjectDirTree, sub.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			cm := &ostree.Commit{Timestamp: coTimestamp, RootTree: root, RootMeta: meta}
			b, err := cm.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			c, err := txn.WriteMetadata(ostree.ObjectCommit, b)
			if err != nil {
				t.Fatal(err)
			}
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
			parent := t.TempDir()
			dest := filepath.Join(parent, "a", "checkout")
			coMust(t, os.Mkdir(filepath.Dir(dest), 0o755))
			_, err = Checkout(context.Background(), r, c.String(), dest, CheckoutOptions{})
			if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), tree.String()) {
				t.Errorf("Checkout(dirtree with %q) = %v, want ErrCorrupt naming %s", name, err, tree)
			}
			if got := coListDir(t, parent); got != parent+" d---------\n"+filepath.Dir(dest)+" d---------\n" {
				t.Errorf("Checkout(dirtree with %q) left:\n%s", name, got)
			}
		})
	}
}

// Metadata objects must be normal-form GVariants: a commit with a
// non-zero padding byte parses, but is corrupt.
func TestCheckoutRefusesNonNormalMetadata(t *testing.T) {
	t.Parallel()
	r := coNewRepo(t, ModeArchive)
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	m, err := txn.WriteMetadata(ostree.ObjectDirMeta, ostree.DirMeta{Mode: ostree.ModeDir | 0o755}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	root, err := txn.WriteMetadata(ostree.ObjectDirTree, ostree.DirTree{}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	cm := &ostree.Commit{Subject: "odd", Timestamp: coTimestamp, RootTree: root, RootMeta: m}
	b, err := cm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The timestamp is 8-aligned after the subject and body strings: set
	// the first padding byte that the decoder skips.
	commitType := gvariant.MustType("(a{sv}aya(say)sstayay)")
	odd := -1
	for i := range b {
		if b[i] != 0 {
			continue
		}
		b[i] = 1
		if _, err := ostree.ParseCommit(b); err == nil && !gvariant.IsNormal(commitType, b) {
			odd = i
			break
		}
		b[i] = 0
	}
	if odd < 0 {
		t.Fatalf("internal error: commit %x has no padding byte", b)
	}
	c, err := txn.WriteMetadata(ostree.ObjectCommit, b)
	if err != nil {
		t.Fatal(err)
	}
	coMust(t, txn.Commit())
	dest := filepath.Join(t.TempDir(), "checkout")
	_, err = Checkout(context.Background(), r, c.String(), dest, CheckoutOptions{})
	if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), c.String()) {
		t.Errorf("Checkout(non-normal commit) = %v, want ErrCorrupt naming %s", err, c)
	}
}

// A hardlinked object whose verification stamp (mtime 0, set when it was
// stored) is intact is not read again; one whose stamp a write broke is
// hashed, and checked out if its content is still right. Damage whose
// stamp was put back by the object's owner passes a checkout, as it
// passes --verify=false; fsck still finds it.
func TestCheckoutStamp(t *testing.T) {
	t.Parallel()
	tree := coMakeTree(t, coAwkward{})
	checkout := func(t *testing.T, r *Repo) (CheckoutStats, error) {
		t.Helper()
		dest := filepath.Join(t.TempDir(), "checkout")
		t.Cleanup(func() { coMakeWritable(dest) })
		return Checkout(context.Background(), r, "test/ref", dest, CheckoutOptions{UserMode: true})
	}
	for _, mode := range []Mode{ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r := coNewRepo(t, mode)
			c := coCommitDir(t, r, tree, "test/ref", "awkward")
			e, err := Lookup(r, c, "/big.bin")
			if err != nil {
				t.Fatal(err)
			}
			obj := r.ObjectPath(e.Object())

			st, err := checkout(t, r)
			if err != nil {
				t.Fatal(err)
			}
			if st.Stamped == 0 || st.Verified != 0 {
				t.Errorf("fresh repository: Checkout() stamped %d, hashed %d objects; want some and 0", st.Stamped, st.Verified)
			}

			now := time.Now()
			if err := os.Chtimes(obj, now, now); err != nil {
				t.Fatal(err)
			}
			st2, err := checkout(t, r)
			if err != nil {
				t.Fatalf("Checkout() with an intact object whose stamp is gone = %v", err)
			}
			if st2.Verified != st.Verified+1 || st2.Stamped != st.Stamped-1 {
				t.Errorf("stamp gone: Checkout() stamped %d, hashed %d; want %d and %d", st2.Stamped, st2.Verified, st.Stamped-1, st.Verified+1)
			}

			coDamage(t, obj, "flip")
			if _, err := checkout(t, r); !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("Checkout() with a rewritten object = %v, want ErrCorrupt", err)
			}

			// The owner puts the stamp back (and the mode, which coDamage changed).
			if err := os.Chmod(obj, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(obj, time.Unix(0, 0), time.Unix(0, 0)); err != nil {
				t.Fatal(err)
			}
			if _, err := checkout(t, r); err != nil {
				t.Fatalf("Checkout() with damage under a restored stamp = %v, want no error (not detected by design)", err)
			}
			rep, err := Fsck(context.Background(), r, FsckOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.OK() {
				t.Errorf("Fsck() of a repository with a rewritten object = OK, want a problem")
			}
		})
	}
}
