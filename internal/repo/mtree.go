package repo

import (
	"fmt"
	"sort"

	"github.com/strata-os/strata/internal/ostree"
)

// MutableTree is a commit's tree being changed inside a transaction, as libostree's
// OstreeMutableTree is: a directory read from the repository stays its (dirtree, dirmeta)
// pair until something below it changes, so that changing a few paths of a large tree
// reads and writes only the dirtrees on those paths. Layering packages on a commit
// (compose) and applying image layers (oci) build their commits with it.
type MutableTree struct {
	Root *TreeNode
	txn  *Txn
	// writeMeta stores a dirtree; nil means txn.WriteMetadata.
	writeMeta func(ostree.ObjectType, []byte) (ostree.Checksum, error)
}

// TreeNode is one entry of a MutableTree.
type TreeNode struct {
	Dir      bool
	Meta     ostree.Checksum      // dirmeta (directories)
	Tree     ostree.Checksum      // dirtree, while Children is nil
	Children map[string]*TreeNode // nil: not read yet (Expand)
	Content  ostree.Checksum      // content object (files and symlinks)
	// Implicit marks a directory made only as the parent of another entry, whose metadata
	// is a default rather than anything the change said.
	Implicit bool
}

// NewMutableTree returns a mutable view, in txn, of the tree with root dirtree tree and root
// dirmeta meta (a commit's RootTree and RootMeta). A zero tree is an empty root directory.
func NewMutableTree(txn *Txn, tree, meta ostree.Checksum) *MutableTree {
	root := &TreeNode{Dir: true, Tree: tree, Meta: meta}
	if tree.IsZero() {
		root.Children = map[string]*TreeNode{}
	}
	return &MutableTree{Root: root, txn: txn}
}

// SetMetadataWriter makes Write store dirtrees through w (which must store them in the
// tree's transaction), for a caller that counts what it writes; w's errors are returned as
// they are.
func (t *MutableTree) SetMetadataWriter(w func(ostree.ObjectType, []byte) (ostree.Checksum, error)) {
	t.writeMeta = w
}

// Expand reads the entries of directory n from its dirtree, once.
func (t *MutableTree) Expand(n *TreeNode) error {
	if n.Children != nil {
		return nil
	}
	b, err := t.txn.ReadMetadata(ostree.ObjectDirTree, n.Tree)
	if err != nil {
		return fmt.Errorf("reading dirtree %s: %w", n.Tree, err)
	}
	dt, err := ostree.ParseDirTree(b)
	if err != nil {
		return fmt.Errorf("parsing dirtree %s: %w", n.Tree, err)
	}
	n.Children = make(map[string]*TreeNode, len(dt.Files)+len(dt.Dirs))
	for _, f := range dt.Files {
		n.Children[f.Name] = &TreeNode{Content: f.Checksum}
	}
	for _, d := range dt.Dirs {
		n.Children[d.Name] = &TreeNode{Dir: true, Tree: d.Tree, Meta: d.Meta}
	}
	return nil
}

// Write stores the dirtree of every directory that was read or changed, bottom up, and
// returns the root's dirtree and dirmeta.
func (t *MutableTree) Write() (tree, meta ostree.Checksum, err error) {
	tree, err = t.write(t.Root)
	return tree, t.Root.Meta, err
}

func (t *MutableTree) write(n *TreeNode) (ostree.Checksum, error) {
	if n.Children == nil {
		return n.Tree, nil
	}
	names := make([]string, 0, len(n.Children))
	for name := range n.Children {
		names = append(names, name)
	}
	sort.Strings(names)
	var dt ostree.DirTree
	for _, name := range names {
		c := n.Children[name]
		if !c.Dir {
			dt.Files = append(dt.Files, ostree.TreeFile{Name: name, Checksum: c.Content})
			continue
		}
		sub, err := t.write(c)
		if err != nil {
			return ostree.Checksum{}, err
		}
		dt.Dirs = append(dt.Dirs, ostree.TreeDir{Name: name, Tree: sub, Meta: c.Meta})
	}
	dt.Sort()
	var sum ostree.Checksum
	var err error
	if t.writeMeta != nil {
		sum, err = t.writeMeta(ostree.ObjectDirTree, dt.Marshal())
	} else if sum, err = t.txn.WriteMetadata(ostree.ObjectDirTree, dt.Marshal()); err != nil {
		err = fmt.Errorf("writing dirtree: %w", err)
	}
	if err != nil {
		return ostree.Checksum{}, err
	}
	n.Tree = sum
	return sum, nil
}
