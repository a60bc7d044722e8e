package repo

import (
	"errors"
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
			r, err := Init(t.TempDir(), mode)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			txn, err := r.Begin()
			if err != nil {
				t.Fatal(err)
			}
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
