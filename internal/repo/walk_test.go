package repo

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/testutil"
)

// coVectorRepo opens a repository of a fresh copy of the test vectors.
func coVectorRepo(t *testing.T, name string) *Repo {
	t.Helper()
	r, err := Open(filepath.Join(testutil.Vectors(t), name))
	if err != nil {
		t.Fatalf("Open(%s) = %v", name, err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func coChecksum(t *testing.T, s string) ostree.Checksum {
	t.Helper()
	c, err := ostree.ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestWalkCommit(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-archive")
	c1 := coChecksum(t, coVectorC1)
	for _, tc := range []struct {
		name string
		fn   func(e *WalkEntry) error // nil: visit everything
		want []string
	}{
		{"all", nil, []string{"d /", "f /hello.txt", "f /link", "f /xattr.txt", "d /bin", "f /bin/run.sh", "d /empty"}},
		{"skip dir", func(e *WalkEntry) error {
			if e.Path == "/bin" {
				return fs.SkipDir
			}
			return nil
		}, []string{"d /", "f /hello.txt", "f /link", "f /xattr.txt", "d /bin", "d /empty"}},
		{"skip rest of dir from a file", func(e *WalkEntry) error {
			if e.Path == "/link" {
				return fs.SkipDir
			}
			return nil
		}, []string{"d /", "f /hello.txt", "f /link"}},
		{"skip all", func(e *WalkEntry) error {
			if e.Path == "/xattr.txt" {
				return fs.SkipAll
			}
			return nil
		}, []string{"d /", "f /hello.txt", "f /link", "f /xattr.txt"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			err := WalkCommit(context.Background(), r, c1, func(e *WalkEntry, err error) error {
				if err != nil {
					return err
				}
				got = append(got, string(e.Kind[0])+" "+e.Path)
				if tc.fn != nil {
					return tc.fn(e)
				}
				return nil
			})
			if err != nil {
				t.Fatalf("WalkCommit() = %v", err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("WalkCommit() visited (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWalkEntryMetadata(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-bare-user")
	c2 := coChecksum(t, coVectorC2)
	e, err := Lookup(r, c2, "/xdir")
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.DirMeta()
	if err != nil || m.UID != 1000 || m.Mode != ostree.ModeDir|0o700 || len(m.Xattrs) != 1 {
		t.Errorf("Lookup(/xdir).DirMeta() = %+v, %v, want uid 1000, mode 040700, one xattr", m, err)
	}
	f, err := Lookup(r, c2, "xdir/suid")
	if err != nil {
		t.Fatal(err)
	}
	fi, size, err := f.FileInfo()
	if err != nil || fi.Mode != ostree.ModeReg|0o4755 || size != 9 || f.Name() != "suid" {
		t.Errorf("Lookup(xdir/suid).FileInfo() = %+v, %d, %v, want mode 0104755, size 9", fi, size, err)
	}
	if _, err := f.DirMeta(); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("file entry DirMeta() = %v, want ErrInvalid", err)
	}
}

// A directory that cannot be read is reported to fn a second time, with
// the error; fn decides whether the walk goes on (fsck collects all such
// problems).
func TestWalkCommitReportsBrokenDirectories(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-archive")
	c1 := coChecksum(t, coVectorC1)
	bin, err := Lookup(r, c1, "/bin")
	if err != nil {
		t.Fatal(err)
	}
	coMust(t, os.Remove(r.ObjectPath(bin.Object())))
	var visited, failed []string
	err = WalkCommit(context.Background(), r, c1, func(e *WalkEntry, err error) error {
		if err != nil {
			failed = append(failed, e.Path)
			if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), bin.Checksum.String()) {
				t.Errorf("walk error for %s = %v, want ErrNotFound naming %s", e.Path, err, bin.Checksum)
			}
			return nil
		}
		visited = append(visited, e.Path)
		return nil
	})
	if err != nil {
		t.Fatalf("WalkCommit(continuing) = %v", err)
	}
	if want := []string{"/", "/hello.txt", "/link", "/xattr.txt", "/bin", "/empty"}; !cmp.Equal(visited, want) || !cmp.Equal(failed, []string{"/bin"}) {
		t.Errorf("WalkCommit() visited %v and failed %v, want %v and [/bin]", visited, failed, want)
	}
	err = WalkCommit(context.Background(), r, c1, func(e *WalkEntry, err error) error { return err })
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("WalkCommit(stopping) = %v, want ErrNotFound", err)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-archive")
	c1 := coChecksum(t, coVectorC1)
	for _, tc := range []struct {
		path     string
		wantPath string
		wantKind EntryKind
		wantSum  string
		wantErr  error
	}{
		{"/", "/", EntryDir, "0b51c2765671ba10e1ce809d2fc8809f87e066b5c1f7024c7c385ea3c718089a", nil},
		{"", "/", EntryDir, "0b51c2765671ba10e1ce809d2fc8809f87e066b5c1f7024c7c385ea3c718089a", nil},
		{"/bin/run.sh", "/bin/run.sh", EntryFile, "89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5", nil},
		{"bin//run.sh", "/bin/run.sh", EntryFile, "89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5", nil},
		{"/empty", "/empty", EntryDir, "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d", nil},
		{"/link", "/link", EntryFile, "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35", nil},
		{"/nope", "", "", "", errdefs.ErrNotFound},
		{"/hello.txt/x", "", "", "", errdefs.ErrInvalid},
	} {
		t.Run(tc.path, func(t *testing.T) {
			t.Parallel()
			e, err := Lookup(r, c1, tc.path)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Errorf("Lookup(%q) = %v, want %v", tc.path, err, tc.wantErr)
				}
				return
			}
			if err != nil || e.Path != tc.wantPath || e.Kind != tc.wantKind || e.Checksum.String() != tc.wantSum {
				t.Errorf("Lookup(%q) = %+v, %v, want %s %s %s", tc.path, e, err, tc.wantKind, tc.wantPath, tc.wantSum)
			}
		})
	}
}
