package repo

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
)

// The fsck, prune, fault and crash tests write commits through Txn with
// the small committers below rather than through CommitTree, so that they
// test the transaction and the checks, not the commit builder.

// testCommit is a commit written by writeTestTree with the objects of its
// tree by path: "a.txt" names a content object, "sub" a dirtree, "sub@meta"
// its dirmeta; "/" and "/@meta" are the root's.
type testCommit struct {
	Commit  ostree.Checksum
	Objects map[string]ostree.ObjectName
}

// testFileInfo is what the test committers store for a file: canonical
// ownership and permissions, so that every mode can hold it.
func testFileInfo(mode os.FileMode, link string) ostree.FileInfo {
	if link != "" {
		return ostree.FileInfo{Mode: ostree.ModeSymlink | 0o777, SymlinkTarget: link}
	}
	perm := uint32(0o644)
	if mode&0o111 != 0 {
		perm = 0o755
	}
	return ostree.FileInfo{Mode: ostree.ModeReg | perm}
}

var testDirMeta = ostree.DirMeta{Mode: ostree.ModeDir | 0o755}

// testTreeNode is a directory being written: its files' and
// subdirectories' checksums by name.
type testTreeNode struct {
	files map[string]ostree.Checksum
	dirs  map[string]*testTreeNode
}

func newTestTreeNode() *testTreeNode {
	return &testTreeNode{files: map[string]ostree.Checksum{}, dirs: map[string]*testTreeNode{}}
}

func (n *testTreeNode) dir(p string) *testTreeNode {
	if p == "" || p == "." {
		return n
	}
	for _, name := range strings.Split(p, "/") {
		d, ok := n.dirs[name]
		if !ok {
			d = newTestTreeNode()
			n.dirs[name] = d
		}
		n = d
	}
	return n
}

// write stores the dirtrees and dirmetas of n and below, recording them
// in objs under prefix.
func (n *testTreeNode) write(txn *Txn, prefix string, objs map[string]ostree.ObjectName) (tree, meta ostree.Checksum, err error) {
	var t ostree.DirTree
	for name, c := range n.files {
		t.Files = append(t.Files, ostree.TreeFile{Name: name, Checksum: c})
	}
	for name, d := range n.dirs {
		sub, subMeta, err := d.write(txn, path.Join(prefix, name), objs)
		if err != nil {
			return tree, meta, err
		}
		t.Dirs = append(t.Dirs, ostree.TreeDir{Name: name, Tree: sub, Meta: subMeta})
	}
	t.Sort()
	if tree, err = txn.WriteMetadata(ostree.ObjectDirTree, t.Marshal()); err != nil {
		return tree, meta, err
	}
	if meta, err = txn.WriteMetadata(ostree.ObjectDirMeta, testDirMeta.Marshal()); err != nil {
		return tree, meta, err
	}
	key := strings.TrimPrefix(prefix, "/")
	if prefix == "/" {
		key = "/"
	}
	objs[key] = ostree.ObjectName{Checksum: tree, Type: ostree.ObjectDirTree}
	objs[key+"@meta"] = ostree.ObjectName{Checksum: meta, Type: ostree.ObjectDirMeta}
	return tree, meta, nil
}

// finishTestCommit writes the commit of root (and, if detached is not
// nil, its detached metadata), points branch at it and commits txn.
func finishTestCommit(txn *Txn, root *testTreeNode, branch string, parent ostree.Checksum, timestamp uint64, detached []byte, objs map[string]ostree.ObjectName) (ostree.Checksum, error) {
	tree, meta, err := root.write(txn, "/", objs)
	if err != nil {
		return ostree.Checksum{}, err
	}
	cm := &ostree.Commit{Parent: parent, Subject: "test commit on " + branch, Timestamp: timestamp, RootTree: tree, RootMeta: meta}
	b, err := cm.Marshal()
	if err != nil {
		return ostree.Checksum{}, err
	}
	c, err := txn.WriteMetadata(ostree.ObjectCommit, b)
	if err != nil {
		return c, err
	}
	if detached != nil {
		if err := txn.WriteCommitMeta(c, detached); err != nil {
			return c, err
		}
	}
	if branch != "" {
		if err := txn.SetRef("", branch, c); err != nil {
			return c, err
		}
	}
	return c, txn.Commit()
}

// writeTestTree commits files (path → content; "->target" makes a
// symlink, a path ending in "/" an empty directory) on branch ("" for none)
// in one transaction.
func writeTestTree(r *Repo, branch string, parent ostree.Checksum, timestamp uint64, detached []byte, files map[string]string) (testCommit, error) {
	txn, err := r.Begin()
	if err != nil {
		return testCommit{}, err
	}
	defer txn.Abort()
	objs := map[string]ostree.ObjectName{}
	root := newTestTreeNode()
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		if strings.HasSuffix(p, "/") {
			root.dir(strings.TrimSuffix(p, "/"))
			continue
		}
		content, link := files[p], ""
		if strings.HasPrefix(content, "->") {
			content, link = "", strings.TrimPrefix(content, "->")
		}
		fi := testFileInfo(0o644, link)
		c, err := txn.WriteContent(fi, strings.NewReader(content), int64(len(content)), nil)
		if err != nil {
			return testCommit{}, fmt.Errorf("writing %s: %w", p, err)
		}
		root.dir(path.Dir(p)).files[path.Base(p)] = c
		objs[p] = ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
	}
	c, err := finishTestCommit(txn, root, branch, parent, timestamp, detached, objs)
	return testCommit{Commit: c, Objects: objs}, err
}

// mustWriteTestTree is writeTestTree for the test goroutine.
func mustWriteTestTree(t testing.TB, r *Repo, branch string, parent ostree.Checksum, detached []byte, files map[string]string) testCommit {
	t.Helper()
	tc, err := writeTestTree(r, branch, parent, 1700000000, detached, files)
	if err != nil {
		t.Fatalf("writeTestTree(%s) = %v", branch, err)
	}
	return tc
}

// commitTestDir commits the directory dir on branch with the given parent
// in one transaction, as `repo commit --tree` would with canonical
// permissions. It is the workload of the crash tests' helper processes;
// stage, if set, is called after each content object is staged with the
// number staged so far.
func commitTestDir(ctx context.Context, r *Repo, dir, branch string, parent ostree.Checksum, timestamp uint64, stage func(n int)) (ostree.Checksum, error) {
	txn, err := r.Begin()
	if err != nil {
		return ostree.Checksum{}, err
	}
	defer txn.Abort()
	root := newTestTreeNode()
	staged := 0
	err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.IsDir() {
			root.dir(filepath.ToSlash(rel))
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		var c ostree.Checksum
		if info.Mode()&os.ModeSymlink != 0 {
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			c, err = txn.WriteContent(testFileInfo(0, target), nil, 0, nil)
			if err != nil {
				return fmt.Errorf("committing %s: %w", p, err)
			}
		} else {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			c, err = txn.WriteContent(testFileInfo(info.Mode(), ""), f, info.Size(), nil)
			f.Close()
			if err != nil {
				return fmt.Errorf("committing %s: %w", p, err)
			}
		}
		root.dir(filepath.ToSlash(filepath.Dir(rel))).files[d.Name()] = c
		staged++
		if stage != nil {
			stage(staged)
		}
		return nil
	})
	if err != nil {
		return ostree.Checksum{}, err
	}
	return finishTestCommit(txn, root, branch, parent, timestamp, nil, map[string]ostree.ObjectName{})
}

// makeTestDir generates a tree of files small files in nested
// directories, a few symlinks, and, if bigMiB > 0, big.bin: a sparse-ish
// file of that size, random 1 MiB extents among holes. The content is a
// function of seed.
func makeTestDir(t testing.TB, dir string, files, bigMiB int, seed uint64) {
	t.Helper()
	rng := seed*0x9e3779b97f4a7c15 | 1
	next := func() uint64 { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng }
	for i := 0; i < files; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%02d/e%02d/f%05d.txt", i%37, i%11, i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		size := int(next() % 6000)
		var b bytes.Buffer
		for b.Len() < size {
			fmt.Fprintf(&b, "%d:%x\n", i, next())
		}
		if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		if i%250 == 0 {
			if err := os.Symlink(filepath.Base(p), p+".link"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if bigMiB == 0 {
		return
	}
	f, err := os.Create(filepath.Join(dir, "big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(int64(bigMiB) << 20); err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < int64(bigMiB)<<20; off += 4 << 20 {
		for i := 0; i+8 <= len(chunk); i += 8 {
			v := next()
			for j := 0; j < 8; j++ {
				chunk[i+j] = byte(v >> (8 * j))
			}
		}
		if _, err := f.WriteAt(chunk, off); err != nil {
			t.Fatal(err)
		}
	}
}

// requireFsckClean fails the test unless Fsck finds no error.
func requireFsckClean(t testing.TB, r *Repo) *FsckReport {
	t.Helper()
	rep, err := Fsck(context.Background(), r, FsckOptions{})
	if err != nil {
		t.Fatalf("Fsck(%s) = %v", r.Path(), err)
	}
	if !rep.OK() {
		var lines []string
		for _, p := range rep.Problems {
			lines = append(lines, p.String())
		}
		t.Fatalf("Fsck(%s) found %d problems, want none:\n%s", r.Path(), rep.Errors(), strings.Join(lines, "\n"))
	}
	return rep
}
