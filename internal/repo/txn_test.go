package repo

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

func TestTxnWriteAndReadBack(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeArchive, ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r, txn := beginTxn(t, mode)
			fi := ostree.FileInfo{Mode: 0o100644}
			c, err := txn.WriteContent(fi, strings.NewReader("hello world\n"), 12, nil)
			if err != nil {
				t.Fatal(err)
			}
			if want := "81381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6"; c.String() != want {
				t.Errorf("WriteContent(hello.txt) = %s, want %s", c, want)
			}
			link := ostree.FileInfo{Mode: 0o120777, SymlinkTarget: "hello.txt"}
			lc, err := txn.WriteContent(link, nil, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			bad := ostree.Checksum{1}
			if _, err := txn.WriteContent(fi, strings.NewReader("tampered!!!\n"), 12, &bad); !errors.Is(err, errdefs.ErrCorrupt) {
				t.Errorf("WriteContent(wrong expected checksum) error = %v, want ErrCorrupt", err)
			}
			if _, err := txn.WriteContent(fi, strings.NewReader("short"), 12, nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
				t.Errorf("WriteContent(short payload) error = %v, want ErrFailedPrecondition", err)
			}
			if ok, _ := r.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}); ok {
				t.Errorf("object visible in objects/ before Commit")
			}
			if err := txn.SetRef("", "test/ref", lc); err != nil {
				t.Fatal(err)
			}
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
			ct, err := r.OpenContent(c)
			if err != nil {
				t.Fatal(err)
			}
			buf, err := io.ReadAll(ct)
			if err != nil {
				t.Fatal(err)
			}
			ct.Close()
			if string(buf) != "hello world\n" || ct.Info.Mode != 0o100644 {
				t.Errorf("OpenContent = %q mode %o, want hello world mode 100644", buf, ct.Info.Mode)
			}
			lk, err := r.OpenContent(lc)
			if err != nil {
				t.Fatal(err)
			}
			lk.Close()
			if lk.Info.SymlinkTarget != "hello.txt" || !lk.Info.IsSymlink() {
				t.Errorf("OpenContent(link) = %+v, want symlink to hello.txt", lk.Info)
			}
			if got, err := r.ResolveRev("test/ref"); err != nil || got != lc {
				t.Errorf("ResolveRev(test/ref) = %s, %v, want %s", got, err, lc)
			}
		})
	}
}

// TestCommitMovesNewDirectoriesWhole: a transaction into a repository whose objects/XX
// directories do not exist yet moves each staged XX directory with one rename; into one that has
// them, object by object. Both end with every object in place.
func TestCommitMovesNewDirectoriesWhole(t *testing.T) {
	t.Parallel()
	r, err := Init(t.TempDir(), ModeBareUser)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	write := func(n int, salt string) (objects []ostree.Checksum, renames int) {
		t.Helper()
		r.onCommitStep = func(step string) {
			if step == "moved-object" {
				renames++
			}
		}
		defer func() { r.onCommitStep = nil }()
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		for i := range n {
			body := fmt.Sprintf("%s object %d\n", salt, i)
			c, err := txn.WriteContent(ostree.FileInfo{Mode: 0o100644}, strings.NewReader(body), int64(len(body)), nil)
			if err != nil {
				t.Fatal(err)
			}
			objects = append(objects, c)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		return objects, renames
	}
	dirsOf := func(objs []ostree.Checksum) map[string]bool {
		d := map[string]bool{}
		for _, c := range objs {
			d[c.String()[:2]] = true
		}
		return d
	}
	first, renames := write(600, "first")
	if want := len(dirsOf(first)); renames != want {
		t.Errorf("first transaction: %d renames for %d objects, want one per directory (%d)", renames, len(first), want)
	}
	second, renames := write(600, "second")
	// Objects in directories the first made are renamed one by one, new directories whole.
	old, fresh := dirsOf(first), map[string]bool{}
	want := 0
	for _, c := range second {
		if d := c.String()[:2]; !old[d] {
			fresh[d] = true
		} else {
			want++
		}
	}
	if want += len(fresh); renames != want || want <= len(fresh) {
		t.Errorf("second transaction: %d renames, want %d (%d new directories, the rest one per object)", renames, want, len(fresh))
	}
	for _, c := range append(first, second...) {
		if ok, err := r.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}); !ok || err != nil {
			t.Fatalf("object %s missing after commit: %v", c, err)
		}
	}
	if rep := requireFsckClean(t, r); rep.Objects < int64(len(first)+len(second)) {
		t.Errorf("fsck checked %d objects, want at least %d", rep.Objects, len(first)+len(second))
	}
}

// beginTxn makes a repository of the given mode in a temporary directory and begins a
// transaction in it.
func beginTxn(t *testing.T, mode Mode) (*Repo, *Txn) {
	t.Helper()
	r, err := Init(t.TempDir(), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	return r, txn
}
