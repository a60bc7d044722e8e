package repo

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"math/rand"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// Helpers of the checkout, walk, log, diff and ls tests. Their names start
// with "co" so that they stay out of the way of other tests of the package.

// coTimestamp is the timestamp of every test commit: 2023-01-01 UTC.
const coTimestamp = 1672531200

// coNewRepo creates a repository of the given mode in a temporary
// directory, with fsync off.
func coNewRepo(t *testing.T, mode Mode) *Repo {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatalf("Init(%s) = %v", mode, err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}

// coCommitDir commits the directory dir as a new commit on ref (parent:
// the ref's current commit, if any) and returns the commit checksum. It
// reads ownership, modes and xattrs like `ostree commit` and applies the
// canonical permissions of bare-user-only repositories.
func coCommitDir(t *testing.T, r *Repo, dir, ref, subject string) ostree.Checksum {
	t.Helper()
	txn, err := r.Begin()
	if err != nil {
		t.Fatalf("Begin() = %v", err)
	}
	defer txn.Abort()
	tree, meta := coWriteDir(t, txn, dir)
	cm := &ostree.Commit{Subject: subject, Timestamp: coTimestamp, RootTree: tree, RootMeta: meta}
	if parent, err := r.ReadRef("", ref); err == nil {
		cm.Parent = parent
		cm.Timestamp = coTimestamp + 86400
	}
	cm.Metadata.Set(ostree.MetaVersion, gvariant.NewVariant("s", subject))
	b, err := cm.Marshal()
	if err != nil {
		t.Fatalf("Commit.Marshal() = %v", err)
	}
	c, err := txn.WriteMetadata(ostree.ObjectCommit, b)
	if err != nil {
		t.Fatalf("WriteMetadata(commit) = %v", err)
	}
	if err := txn.SetRef("", ref, c); err != nil {
		t.Fatalf("SetRef(%s) = %v", ref, err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatalf("Txn.Commit() = %v", err)
	}
	return c
}

func coWriteDir(t *testing.T, txn *Txn, dir string) (tree, meta ostree.Checksum) {
	t.Helper()
	canonical := txn.Repo().Mode() == ModeBareUserOnly
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		t.Fatal(err)
	}
	xs, err := readXattrs(dir)
	if err != nil {
		t.Fatal(err)
	}
	dm := ostree.DirMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: xs}
	if canonical {
		dm = ostree.DirMeta{Mode: ostree.CanonicalizeForBareUserOnly(st.Mode)}
	}
	meta, err = txn.WriteMetadata(ostree.ObjectDirMeta, dm.Marshal())
	if err != nil {
		t.Fatalf("WriteMetadata(dirmeta of %s) = %v", dir, err)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var dt ostree.DirTree
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		if e.IsDir() {
			st, sm := coWriteDir(t, txn, p)
			dt.Dirs = append(dt.Dirs, ostree.TreeDir{Name: e.Name(), Tree: st, Meta: sm})
			continue
		}
		var fst unix.Stat_t
		if err := unix.Lstat(p, &fst); err != nil {
			t.Fatal(err)
		}
		fi := ostree.FileInfo{UID: fst.Uid, GID: fst.Gid, Mode: fst.Mode}
		var payload io.Reader
		if fi.IsSymlink() {
			if fi.SymlinkTarget, err = os.Readlink(p); err != nil {
				t.Fatal(err)
			}
		} else {
			if fi.Xattrs, err = readXattrs(p); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			payload = f
		}
		if canonical {
			fi.UID, fi.GID, fi.Xattrs = 0, 0, nil
			fi.Mode = ostree.CanonicalizeForBareUserOnly(fi.Mode)
		}
		c, err := txn.WriteContent(fi, payload, fst.Size, nil)
		if err != nil {
			t.Fatalf("WriteContent(%s) = %v", p, err)
		}
		dt.Files = append(dt.Files, ostree.TreeFile{Name: e.Name(), Checksum: c})
	}
	dt.Sort()
	tree, err = txn.WriteMetadata(ostree.ObjectDirTree, dt.Marshal())
	if err != nil {
		t.Fatalf("WriteMetadata(dirtree of %s) = %v", dir, err)
	}
	return tree, meta
}

// coAwkward describes the awkward tree coMakeTree builds.
type coAwkward struct {
	// root adds what only root can make: other owners, setuid and setgid
	// files, a setgid directory.
	root bool
}

// coMakeTree builds a tree with every case a checkout must get right and
// returns its path.
func coMakeTree(t *testing.T, opts coAwkward) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	rng := rand.New(rand.NewSource(1))
	big := make([]byte, 1<<20+12345)
	rng.Read(big)
	file := func(p string, data []byte, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := unix.Chmod(full, uint32(mode)); err != nil {
			t.Fatal(err)
		}
	}
	mkdir := func(p string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	mkdir("")
	file("empty.txt", nil, 0o644)
	file("big.bin", big, 0o644)
	file("exec.sh", []byte("#!/bin/sh\necho hi\n"), 0o755)
	file("readonly.txt", []byte("read only\n"), 0o444)
	file("world-writable", []byte("anyone\n"), 0o666)
	file("hard1", []byte("one inode, two names\n"), 0o644)
	must(os.Link(filepath.Join(dir, "hard1"), filepath.Join(dir, "hard2")))
	must(os.Symlink("does/not/exist", filepath.Join(dir, "dangling")))
	must(os.Symlink("/etc/passwd", filepath.Join(dir, "absolute")))
	must(os.Symlink("big.bin", filepath.Join(dir, "relative")))
	file("xattr.txt", []byte("with xattrs\n"), 0o644)
	must(unix.Setxattr(filepath.Join(dir, "xattr.txt"), "user.zzz", []byte("last"), 0))
	must(unix.Setxattr(filepath.Join(dir, "xattr.txt"), "user.aaa", []byte("first"), 0))
	mkdir("emptydir")
	mkdir("xattr-dir")
	must(unix.Setxattr(filepath.Join(dir, "xattr-dir"), "user.dirattr", []byte("d"), 0))
	file("ünïcödé name with spaces.txt", []byte("utf-8\n"), 0o644)
	file("sp ace/dir with space/f", []byte("spaces\n"), 0o644)
	file("deep/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/leaf", []byte("deep\n"), 0o644)
	file("private/secret", []byte("0700 dir\n"), 0o600)
	file("readonly-dir/inside", []byte("0500 dir\n"), 0o644)
	file("readonly-dir/sub/more", []byte("0500 dir, subdir\n"), 0o644)
	for i := 0; i < 300; i++ {
		data := []byte("same\n")
		if i%7 == 0 {
			data = []byte(strings.Repeat("x", i) + "\n")
		}
		file(fmt.Sprintf("many/f%03d", i), data, 0o644)
	}
	if opts.root {
		// Only root can read these back to commit them.
		file("no-perms", []byte("nobody may read me\n"), 0o000)
		file("closed-dir/inside", []byte("0000 dir\n"), 0o644)
		file("setuid", []byte("\x00\x01binary\xff"), 0o4755)
		file("setgid", []byte("setgid\n"), 0o2755)
		file("owned/by-1000", []byte("not root's\n"), 0o640)
		must(os.Lchown(filepath.Join(dir, "owned/by-1000"), 1000, 1001))
		must(os.Lchown(filepath.Join(dir, "owned"), 1000, 1000))
		must(os.Lchown(filepath.Join(dir, "relative"), 1000, 1000))
		mkdir("setgid-dir")
		must(os.Chmod(filepath.Join(dir, "setgid-dir"), 0o2775))
		mkdir("sticky")
		must(os.Chmod(filepath.Join(dir, "sticky"), 0o1777))
	}
	// Directory modes last: 0500 and 0000 directories cannot be filled.
	must(os.Chmod(filepath.Join(dir, "private"), 0o700))
	must(os.Chmod(filepath.Join(dir, "readonly-dir/sub"), 0o500))
	must(os.Chmod(filepath.Join(dir, "readonly-dir"), 0o500))
	if opts.root {
		must(os.Chmod(filepath.Join(dir, "closed-dir"), 0o000))
	}
	t.Cleanup(func() { coMakeWritable(dir) })
	return dir
}

// coMakeWritable lets t.TempDir's cleanup remove 0500 and 0000 directories
// when the tests do not run as root.
func coMakeWritable(dir string) {
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	// A second pass reaches directories that were closed the first time.
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			os.Chmod(p, 0o700)
		}
		return nil
	})
}

// coNode is what the tree comparison looks at for one path.
type coNode struct {
	Type     string // "dir", "file", "symlink"
	Perm     uint32 // permission bits with setuid, setgid, sticky
	UID, GID uint32
	Size     int64
	SHA256   string // file content
	Target   string
	Xattrs   map[string]string
}

// coScan records every path below dir. Trees with unreadable entries
// (mode 0000) are only scanned as root.
func coScan(t *testing.T, dir string) map[string]coNode {
	t.Helper()
	out := map[string]coNode{}
	var scan func(rel string)
	scan = func(rel string) {
		p := filepath.Join(dir, rel)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		n := coNode{Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
		names, values, err := listXattrs(p)
		if err != nil {
			t.Fatal(err)
		}
		for i := range names {
			if n.Xattrs == nil {
				n.Xattrs = map[string]string{}
			}
			n.Xattrs[names[i]] = string(values[i])
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.Type = "dir"
			ents, err := os.ReadDir(p)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				scan(filepath.Join(rel, e.Name()))
			}
		case unix.S_IFLNK:
			n.Type = "symlink"
			if n.Target, err = os.Readlink(p); err != nil {
				t.Fatal(err)
			}
		case unix.S_IFREG:
			n.Type, n.Size = "file", st.Size
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			n.SHA256 = hex.EncodeToString(sum[:])
		default:
			t.Fatalf("%s: unexpected file type %#o", p, st.Mode)
		}
		out["/"+filepath.ToSlash(rel)] = n
	}
	scan("")
	return out
}

func listXattrs(p string) ([]string, [][]byte, error) {
	xs, err := readXattrs(p)
	if err != nil {
		return nil, nil, err
	}
	names := make([]string, len(xs))
	values := make([][]byte, len(xs))
	for i, x := range xs {
		names[i], values[i] = x.Name, x.Value
	}
	return names, values, nil
}

// coCompareTrees compares the checkout got with the source tree want,
// after applying expect to every node of want. It also checks that every
// directory of the checkout has mtime 0.
func coCompareTrees(t *testing.T, want, got string, expect func(path string, n *coNode)) {
	t.Helper()
	w, g := coScan(t, want), coScan(t, got)
	for p, n := range w {
		expect(p, &n)
		w[p] = n
	}
	for p, n := range g {
		// Hardlinked bare-user objects carry their metadata xattr.
		delete(n.Xattrs, "user.ostreemeta")
		if len(n.Xattrs) == 0 {
			n.Xattrs = nil
		}
		g[p] = n
	}
	if diff := cmp.Diff(w, g); diff != "" {
		t.Errorf("checkout %s differs from tree %s (-want +got):\n%s", got, want, diff)
	}
	var dirs []string
	filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if d != nil && d.IsDir() {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil && st.Mtim.Sec != 0 {
				dirs = append(dirs, p)
			}
		}
		return nil
	})
	sort.Strings(dirs)
	if len(dirs) > 0 {
		t.Errorf("directories of checkout %s with mtime != 0: %v", got, dirs)
	}
}
