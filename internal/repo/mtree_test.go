package repo

import (
	"testing"

	"github.com/strata-os/strata/internal/ostree"
)

func mtRoot(t *testing.T, r *Repo, c ostree.Checksum) *ostree.Commit {
	t.Helper()
	b, err := r.ReadMetadata(ostree.ObjectCommit, c)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := ostree.ParseCommit(b)
	if err != nil {
		t.Fatal(err)
	}
	return cm
}

// TestMutableTree: changing one file of a commit's tree through a MutableTree gives the
// tree a commit of the changed files gives, reading only the dirtrees on the changed path
// (the 3,000-file directory beside it is never expanded).
func TestMutableTree(t *testing.T) {
	t.Parallel()
	r := cmNewRepo(t, ModeBareUser)
	before := cmTree2()
	after := cmTree2()
	for i := range after {
		if after[i].path == "hello.txt" {
			after[i].data = "changed\n"
		}
	}
	c1, _ := cmCommit(t, r, DirSource(cmWriteDir(t, before, false)), CommitOptions{Branch: "a"})
	c2, _ := cmCommit(t, r, DirSource(cmWriteDir(t, after, false)), CommitOptions{Branch: "b"})
	want := mtRoot(t, r, c2)
	// The changed file's content object, as the second commit stored it.
	b, err := r.ReadMetadata(ostree.ObjectDirTree, want.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := ostree.ParseDirTree(b)
	if err != nil {
		t.Fatal(err)
	}
	var changed ostree.Checksum
	for _, f := range dt.Files {
		if f.Name == "hello.txt" {
			changed = f.Checksum
		}
	}

	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	base := mtRoot(t, r, c1)
	mt := NewMutableTree(txn, base.RootTree, base.RootMeta)
	if err := mt.Expand(mt.Root); err != nil {
		t.Fatal(err)
	}
	mt.Root.Children["hello.txt"] = &TreeNode{Content: changed}
	tree, meta, err := mt.Write()
	if err != nil {
		t.Fatal(err)
	}
	if tree != want.RootTree || meta != want.RootMeta {
		t.Errorf("Write() = %s, %s; the commit of the changed files has %s, %s", tree, meta, want.RootTree, want.RootMeta)
	}
	if big := mt.Root.Children["big"]; big == nil || !big.Dir || big.Children != nil {
		t.Errorf("big/ = %+v, want a directory never read", big)
	}

	// An empty tree writes the empty dirtree.
	empty := NewMutableTree(txn, ostree.Checksum{}, base.RootMeta)
	tree, _, err = empty.Write()
	if wantEmpty := ostree.MetadataChecksum((&ostree.DirTree{}).Marshal()); err != nil || tree != wantEmpty {
		t.Errorf("empty Write() = %s, %v; want %s", tree, err, wantEmpty)
	}
}
