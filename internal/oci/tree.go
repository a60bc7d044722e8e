package oci

import (
	"fmt"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// node is one entry of a tree being assembled from layers (repo.MutableTree: a directory
// read from the repository stays a (dirtree, dirmeta) pair until a layer changes something
// below it, so applying a small derived layer to a large base commit reads only the
// dirtrees on the changed paths). Implicit marks a directory created as a missing parent,
// not by a layer's own entry.
type node = repo.TreeNode

// tree is a mutable view of a commit's tree inside a transaction.
type tree struct {
	*repo.MutableTree
	txn   *repo.Txn
	metas map[string]ostree.Checksum // dirmeta bytes → checksum already written
}

var defaultDirMeta = ostree.DirMeta{Mode: 0o40755}

func newTree(txn *repo.Txn) (*tree, error) {
	t := &tree{txn: txn, metas: map[string]ostree.Checksum{}}
	m, err := t.dirMeta(defaultDirMeta)
	if err != nil {
		return nil, err
	}
	t.MutableTree = repo.NewMutableTree(txn, ostree.Checksum{}, m)
	return t, nil
}

func treeFromCommit(txn *repo.Txn, c *ostree.Commit) *tree {
	return &tree{MutableTree: repo.NewMutableTree(txn, c.RootTree, c.RootMeta), txn: txn, metas: map[string]ostree.Checksum{}}
}

func (t *tree) dirMeta(m ostree.DirMeta) (ostree.Checksum, error) {
	b := m.Marshal()
	if c, ok := t.metas[string(b)]; ok {
		return c, nil
	}
	c, err := t.txn.WriteMetadata(ostree.ObjectDirMeta, b)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("writing dirmeta: %w", err)
	}
	t.metas[string(b)] = c
	return c, nil
}

// dir returns the directory at p ("" is the root), creating missing directories
// 0755 root:root as tar(1) does when create is set. A path through a file or symlink is
// refused: layers never write through a symlink.
func (t *tree) dir(p string, create bool) (*node, error) {
	n := t.Root
	if p == "" {
		return n, t.Expand(n)
	}
	for _, name := range strings.Split(p, "/") {
		if err := t.Expand(n); err != nil {
			return nil, err
		}
		c := n.Children[name]
		switch {
		case c == nil && !create:
			return nil, nil
		case c == nil:
			m, err := t.dirMeta(defaultDirMeta)
			if err != nil {
				return nil, err
			}
			c = &node{Dir: true, Meta: m, Children: map[string]*node{}, Implicit: true}
			n.Children[name] = c
		case !c.Dir:
			return nil, fmt.Errorf("%s: goes through a file or symlink: %w", p, errdefs.ErrInvalid)
		}
		n = c
	}
	return n, t.Expand(n)
}

// lookup returns the entry at p, or nil.
func (t *tree) lookup(p string) (*node, error) {
	parent, base := splitPath(p)
	d, err := t.dir(parent, false)
	if err != nil || d == nil {
		return nil, err
	}
	return d.Children[base], nil
}

func splitPath(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// merge lays the tree src over t, as a layer lies over the layers below it: directories
// merge and take src's metadata, anything else replaces. Whiteouts have been applied to t
// before. Nodes of src are moved into t, not copied: src is not used afterwards.
func (t *tree) merge(dst, src *node, srcTree *tree) error {
	dst.Meta = src.Meta
	if err := srcTree.Expand(src); err != nil {
		return err
	}
	if err := t.Expand(dst); err != nil {
		return err
	}
	for name, c := range src.Children {
		d := dst.Children[name]
		if c.Dir && d != nil && d.Dir {
			if err := t.merge(d, c, srcTree); err != nil {
				return err
			}
			continue
		}
		dst.Children[name] = c
	}
	return nil
}

// hasImplicit says whether a directory below n was only created as a parent: its metadata
// is made up, so the layer's tree cannot stand for the layer on its own.
func hasImplicit(n *node) bool {
	for _, c := range n.Children {
		if c.Dir && (c.Implicit || hasImplicit(c)) {
			return true
		}
	}
	return false
}
