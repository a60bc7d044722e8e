package repo

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// faultFixture is a repository with two commits on "main": C1, and C2 on
// top of it, which changes a.txt and has detached metadata.
type faultFixture struct {
	r      *Repo
	c1, c2 testCommit
}

func newFaultFixture(t *testing.T, mode Mode) *faultFixture {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatalf("Init(%s) = %v", mode, err)
	}
	t.Cleanup(func() { r.Close() })
	r.SetFsync(false)
	big := make([]byte, 300<<10)
	for i := range big {
		big[i] = byte(i*7919 + i>>9)
	}
	files := map[string]string{
		"a.txt":           "version 1\n",
		"link":            "->a.txt",
		"big.bin":         string(big),
		"sub/b.txt":       "b\n",
		"sub/deeper/c.sh": "#!/bin/sh\n",
		"empty/":          "",
	}
	fx := &faultFixture{r: r}
	fx.c1 = mustWriteTestTree(t, r, "main", ostree.Checksum{}, nil, files)
	files["a.txt"] = "version 2\n"
	meta, err := ostree.Metadata{{Key: "note", Value: gvariant.NewVariant("s", "detached")}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	fx.c2 = mustWriteTestTree(t, r, "main", fx.c1.Commit, meta, files)
	return fx
}

func (fx *faultFixture) path(n ostree.ObjectName) string { return fx.r.ObjectPath(n) }

func flipByte(t *testing.T, p string, at func(size int64) int64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	i := at(int64(len(b)))
	b[i] ^= 0x55
	// Write in place: the object keeps its inode, owner, mode and xattrs.
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b[i:i+1], i); err != nil {
		t.Fatal(err)
	}
}

func middle(size int64) int64 { return size / 2 }

// faultCase damages the fixture and says which problem Fsck must report.
type faultCase struct {
	name   string
	modes  []Mode // only in these modes; nil: all
	damage func(t *testing.T, fx *faultFixture) FsckProblem
}

func faultCases() []faultCase {
	commitObj := func(c ostree.Checksum) ostree.ObjectName {
		return ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}
	}
	return []faultCase{
		{name: "flipped byte in a content object", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["big.bin"]
			flipByte(t, fx.path(n), middle)
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "flipped byte in a content object's header", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub/b.txt"]
			flipByte(t, fx.path(n), func(int64) int64 { return 10 })
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}, modes: []Mode{ModeArchive}},
		{name: "truncated content object", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["big.bin"]
			if err := os.Truncate(fx.path(n), 1000); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "content object truncated to nothing", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["a.txt"]
			if err := os.Truncate(fx.path(n), 0); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "deleted content object", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub/deeper/c.sh"]
			if err := os.Remove(fx.path(n)); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckMissing, Object: n, Path: "/sub/deeper/c.sh"}
		}},
		{name: "deleted symlink object", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["link"]
			if err := os.Remove(fx.path(n)); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckMissing, Object: n, Path: "/link"}
		}},
		{name: "flipped byte in a dirtree", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub"]
			flipByte(t, fx.path(n), middle)
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "garbage in a dirtree", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub/deeper"]
			if err := os.WriteFile(fx.path(n), []byte("\xff\xfe not a dirtree \x00\x13"), 0o644); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "truncated dirtree", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["/"]
			if err := os.Truncate(fx.path(n), 3); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "deleted dirtree", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub"]
			if err := os.Remove(fx.path(n)); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckMissing, Object: n, Path: "/sub"}
		}},
		{name: "dirtree that hashes to its name but names ..", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			bad := ostree.DirTree{Files: []ostree.TreeFile{{Name: "..", Checksum: fx.c2.Objects["a.txt"].Checksum}}}
			txn, err := fx.r.Begin()
			if err != nil {
				t.Fatal(err)
			}
			c, err := txn.WriteMetadata(ostree.ObjectDirTree, bad.Marshal())
			if err != nil {
				t.Fatal(err)
			}
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: ostree.ObjectName{Checksum: c, Type: ostree.ObjectDirTree}}
		}},
		{name: "deleted dirmeta", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["/@meta"]
			if err := os.Remove(fx.path(n)); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckMissing, Object: n, Path: "/"}
		}},
		{name: "flipped byte in a commit", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := commitObj(fx.c1.Commit)
			flipByte(t, fx.path(n), middle)
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "deleted commit a ref points at", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := commitObj(fx.c2.Commit)
			if err := os.Remove(fx.path(n)); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckMissing, Object: n, Ref: "main"}
		}},
		{name: "garbage detached metadata", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := ostree.ObjectName{Checksum: fx.c2.Commit, Type: ostree.ObjectCommitMeta}
			if err := os.WriteFile(fx.path(n), []byte{0xff}, 0o644); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "ref holding garbage", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			p := filepath.Join(fx.r.Path(), "refs", "heads", "other")
			if err := os.WriteFile(p, []byte("not a checksum\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Ref: "other"}
		}},
		{name: "remote ref to an absent commit", damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			c := ostree.MetadataChecksum([]byte("never stored"))
			if err := fx.r.SetRef("origin", "os/stable", c); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckMissing, Object: commitObj(c), Ref: "origin:os/stable"}
		}},
		{name: "bare-user object without user.ostreemeta", modes: []Mode{ModeBareUser}, damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub/b.txt"]
			if err := unix.Removexattr(fx.path(n), "user.ostreemeta"); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "bare-user object with another file's metadata", modes: []Mode{ModeBareUser}, damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub/b.txt"]
			meta := ostree.FileMeta(ostree.FileInfo{UID: 1000, GID: 1000, Mode: ostree.ModeReg | 0o600})
			if err := unix.Setxattr(fx.path(n), "user.ostreemeta", meta, 0); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "object whose permissions changed", modes: []Mode{ModeBare, ModeBareUserOnly}, damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub/b.txt"]
			if err := os.Chmod(fx.path(n), 0o600); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "symlink object with another target", modes: []Mode{ModeBare, ModeBareUserOnly}, damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["link"]
			p := fx.path(n)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("/etc/shadow", p); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "file in place of a symlink object", modes: []Mode{ModeBare, ModeBareUserOnly}, damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["link"]
			p := fx.path(n)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("a.txt"), 0o777); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
		{name: "symlink in place of an object", modes: []Mode{ModeArchive, ModeBareUser}, damage: func(t *testing.T, fx *faultFixture) FsckProblem {
			n := fx.c2.Objects["sub/b.txt"]
			p := fx.path(n)
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(fx.path(fx.c2.Objects["a.txt"]), p); err != nil {
				t.Fatal(err)
			}
			return FsckProblem{Kind: FsckCorrupt, Object: n}
		}},
	}
}

// runFaultMatrix damages a fresh fixture in mode per case and checks that
// Fsck reports exactly the damaged object, with the right kind, and
// nothing else.
func runFaultMatrix(t *testing.T, mode Mode) {
	for _, tc := range faultCases() {
		if tc.modes != nil && !containsMode(tc.modes, mode) {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fx := newFaultFixture(t, mode)
			requireFsckClean(t, fx.r)
			want := tc.damage(t, fx)
			rep, err := Fsck(context.Background(), fx.r, FsckOptions{})
			if err != nil {
				t.Fatalf("Fsck() = %v", err)
			}
			if rep.OK() || rep.Errors() != 1 {
				t.Fatalf("Fsck() = %d problems %v, want exactly one %s problem", rep.Errors(), rep.Problems, want.Kind)
			}
			got := rep.Problems[0]
			if got.Kind != want.Kind || got.Object != want.Object || got.Ref != want.Ref || (want.Path != "" && got.Path != want.Path) {
				t.Errorf("Fsck() problem = %+v, want %+v", got, want)
			}
			if want.Object.Type != 0 && !strings.Contains(got.String(), want.Object.Checksum.String()) {
				t.Errorf("problem line %q does not name the object %s", got.String(), want.Object)
			}
		})
	}
}

func containsMode(ms []Mode, m Mode) bool {
	for _, x := range ms {
		if x == m {
			return true
		}
	}
	return false
}

func TestFsckNamesEveryBadObject(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeArchive, ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			runFaultMatrix(t, mode)
		})
	}
}
