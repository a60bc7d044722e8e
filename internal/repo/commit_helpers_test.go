package repo

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// The vectors of docs/formats/vectors.md.
const (
	cmC1           = "4e5608541a7900d8b604541ec7ffa70700a6dd3aabc7e71e145a25ac5f306a28"
	cmC1BUO        = "e4e6a9e4287801cad9212de45268cfe0615ad4fde9fec20b4ff7b590ed73b94d"
	cmC2           = "33551e1f5b855ffea3595aed5983953c687ec4e2f96f3d6d00648ffdd647c194"
	cmTree2Dirtree = "002ec500f99fc58769d5b4731e0aaae0cb667a4da5f0e4972ebb8921ad681c2c"
	cmC1Epoch      = 1672531200 // 2023-01-01T00:00:00Z
	cmC2Epoch      = 1672617600 // 2023-01-02T00:00:00Z
)

// cmOptsC1 are the options the C1 vector was committed with.
func cmOptsC1() CommitOptions {
	return CommitOptions{
		Branch: "test/ref", Subject: "Test subject", Body: "Test body",
		Timestamp: time.Unix(cmC1Epoch, 0),
		Metadata:  ostree.Metadata{{Key: "version", Value: gvariant.NewVariant("s", "1.0")}},
	}
}

// cmOptsC2 are the options the C2 vector was committed with (parent: the
// branch head, C1).
func cmOptsC2() CommitOptions {
	return CommitOptions{
		Branch: "test/ref", Subject: "Second",
		Timestamp: time.Unix(cmC2Epoch, 0),
		Metadata: ostree.Metadata{
			{Key: "version", Value: gvariant.NewVariant("s", "2.0")},
			{Key: "custom.uint64", Value: gvariant.NewVariant("t", uint64(42))},
			{Key: "custom.bool", Value: gvariant.NewVariant("b", true)},
			{Key: "custom.bytes", Value: gvariant.NewVariant("ay", []byte{1, 2})},
			{Key: "custom.int32", Value: gvariant.NewVariant("i", int32(-5))},
		},
	}
}

// cmEntry is one entry of a test tree, written to disk (cmWriteDir) or to
// a tar stream (cmWriteTar) the same way.
type cmEntry struct {
	path     string // relative, "" for the root directory
	kind     byte   // 'f' file, 'd' dir, 'l' symlink
	mode     uint32 // permission bits
	uid, gid int
	data     string // file content or symlink target
	xattrs   [][2]string
}

// cmTree1 is inputs/mktree.py (docs/formats/vectors.md).
func cmTree1() []cmEntry {
	return []cmEntry{
		{path: "", kind: 'd', mode: 0o755},
		{path: "hello.txt", kind: 'f', mode: 0o644, data: "hello world\n"},
		{path: "bin", kind: 'd', mode: 0o755},
		{path: "bin/run.sh", kind: 'f', mode: 0o755, data: "#!/bin/sh\necho hi\n"},
		{path: "link", kind: 'l', mode: 0o777, data: "hello.txt"},
		{path: "empty", kind: 'd', mode: 0o755},
		{path: "xattr.txt", kind: 'f', mode: 0o644, data: "has xattr\n", xattrs: [][2]string{{"user.myattr", "value1"}}},
	}
}

// cmTree2 is inputs/mktree2.py (docs/formats/vectors.md).
func cmTree2() []cmEntry {
	es := []cmEntry{
		{path: "", kind: 'd', mode: 0o755},
		{path: "hello.txt", kind: 'f', mode: 0o644, data: "hello world\n"},
		{path: "multi.txt", kind: 'f', mode: 0o600, data: "multi\n", xattrs: [][2]string{{"user.zzz", "last"}, {"user.aaa", "first"}, {"user.empty", ""}}},
		{path: "xdir", kind: 'd', mode: 0o700, uid: 1000, gid: 1000, xattrs: [][2]string{{"user.dirattr", "d"}}},
		{path: "xdir/suid", kind: 'f', mode: 0o4755, uid: 1000, gid: 1000, data: "\x00\x01binary\xff"},
		{path: "big", kind: 'd', mode: 0o755},
	}
	for i := range 3000 {
		es = append(es, cmEntry{path: fmt.Sprintf("big/f%04d", i), kind: 'f', mode: 0o644, data: "same\n"})
	}
	return es
}

// cmWriteDir creates the entries under a new directory and returns it.
// Ownership is applied only when chown is set (needs root); directory
// modes are applied last so that 0500 directories can be filled.
func cmWriteDir(t testing.TB, es []cmEntry, chown bool) string {
	t.Helper()
	root := filepath.Join(t.TempDir(), "tree")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	var dirs []cmEntry
	for _, e := range es {
		p := filepath.Join(root, e.path)
		var err error
		switch e.kind {
		case 'd':
			if e.path != "" {
				err = os.Mkdir(p, 0o755)
			}
			dirs = append(dirs, e)
		case 'f':
			err = os.WriteFile(p, []byte(e.data), 0o600)
			if err == nil {
				err = os.Chmod(p, fs.FileMode(e.mode&0o777)|cmGoMode(e.mode))
			}
		case 'l':
			err = os.Symlink(e.data, p)
		}
		if err == nil && chown {
			err = os.Lchown(p, e.uid, e.gid)
		}
		if err == nil && e.kind == 'f' && e.mode&0o7000 != 0 {
			err = os.Chmod(p, fs.FileMode(e.mode&0o777)|cmGoMode(e.mode)) // chown clears setuid
		}
		for _, x := range e.xattrs {
			if err == nil {
				err = unix.Lsetxattr(p, x[0], []byte(x[1]), 0)
			}
		}
		if err != nil {
			t.Fatalf("creating test tree entry %q: %v", e.path, err)
		}
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		p := filepath.Join(root, dirs[i].path)
		if err := os.Chmod(p, fs.FileMode(dirs[i].mode&0o777)|cmGoMode(dirs[i].mode)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func cmGoMode(m uint32) fs.FileMode {
	var out fs.FileMode
	if m&0o4000 != 0 {
		out |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		out |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// cmWriteTar serializes the entries as a PAX tar stream, root first, as
// `tar -C DIR -cf - .` does ("./" prefixes).
func cmWriteTar(t testing.TB, es []cmEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: "./" + e.path, Mode: int64(e.mode), Uid: e.uid, Gid: e.gid, ModTime: time.Unix(0, 0), Format: tar.FormatPAX}
		switch e.kind {
		case 'd':
			h.Typeflag = tar.TypeDir
			h.Name += "/"
			if e.path == "" {
				h.Name = "./"
			}
		case 'f':
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.data))
		case 'l':
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.data
		}
		for _, x := range e.xattrs {
			if h.PAXRecords == nil {
				h.PAXRecords = map[string]string{}
			}
			h.PAXRecords["SCHILY.xattr."+x[0]] = x[1]
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.kind == 'f' {
			tw.Write([]byte(e.data))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// cmNewRepo creates a repository without fsync in a temp dir.
func cmNewRepo(t testing.TB, mode Mode) *Repo {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}

// cmCommit commits src and fails the test on error.
func cmCommit(t testing.TB, r *Repo, src TreeSource, opts CommitOptions) (ostree.Checksum, CommitStats) {
	t.Helper()
	c, st, err := CommitTree(context.Background(), r, src, opts)
	if err != nil {
		t.Fatalf("CommitTree(%s) = %v", r.Mode(), err)
	}
	return c, st
}

// cmRepoState lists refs and loose objects and the tmp directory, to
// check that a failed commit changed nothing visible.
func cmRepoState(t testing.TB, r *Repo) string {
	t.Helper()
	var lines []string
	refs, err := r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		c, _ := r.ReadRef(ref.Remote, ref.Name)
		lines = append(lines, "ref "+ref.String()+" "+c.String())
	}
	if err := r.ListObjects(func(n ostree.ObjectName) error {
		lines = append(lines, "object "+n.String())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(r.Path(), "tmp"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != "cache" {
			lines = append(lines, "tmp "+e.Name())
		}
	}
	sort.Strings(lines)
	return fmt.Sprint(lines)
}

func cmU32(v uint32) *uint32 { return &v }
