package oci

import (
	"fmt"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// node is one entry of a tree being assembled from layers. A directory read from the
// repository stays a (dirtree, dirmeta) pair until a layer changes something below it, so
// applying a small derived layer to a large base commit reads only the dirtrees on the
// changed paths.
type node struct {
	dir      bool
	meta     ostree.Checksum  // dirmeta (directories)
	tree     ostree.Checksum  // dirtree while children is nil
	children map[string]*node // nil: not expanded yet
	content  ostree.Checksum  // content object (files and symlinks)
	implicit bool             // created as a missing parent, not by a layer's own entry
}

// tree is a mutable view of a commit's tree inside a transaction.
type tree struct {
	txn   *repo.Txn
	root  *node
	metas map[string]ostree.Checksum // dirmeta bytes → checksum already written
}

var defaultDirMeta = ostree.DirMeta{Mode: 0o40755}

func newTree(txn *repo.Txn) (*tree, error) {
	t := &tree{txn: txn, metas: map[string]ostree.Checksum{}}
	m, err := t.dirMeta(defaultDirMeta)
	if err != nil {
		return nil, err
	}
	t.root = &node{dir: true, meta: m, children: map[string]*node{}}
	return t, nil
}

func treeFromCommit(txn *repo.Txn, c *ostree.Commit) *tree {
	return &tree{txn: txn, metas: map[string]ostree.Checksum{},
		root: &node{dir: true, meta: c.RootMeta, tree: c.RootTree}}
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

func (t *tree) expand(n *node) error {
	if n.children != nil {
		return nil
	}
	b, err := t.txn.ReadMetadata(ostree.ObjectDirTree, n.tree)
	if err != nil {
		return fmt.Errorf("reading dirtree %s: %w", n.tree, err)
	}
	dt, err := ostree.ParseDirTree(b)
	if err != nil {
		return fmt.Errorf("parsing dirtree %s: %w", n.tree, err)
	}
	n.children = make(map[string]*node, len(dt.Files)+len(dt.Dirs))
	for _, f := range dt.Files {
		n.children[f.Name] = &node{content: f.Checksum}
	}
	for _, d := range dt.Dirs {
		n.children[d.Name] = &node{dir: true, tree: d.Tree, meta: d.Meta}
	}
	return nil
}

// dir returns the directory at p ("" is the root), creating missing directories
// 0755 root:root as tar(1) does when create is set. A path through a file or symlink is
// refused: layers never write through a symlink.
func (t *tree) dir(p string, create bool) (*node, error) {
	n := t.root
	if p == "" {
		return n, t.expand(n)
	}
	for _, name := range strings.Split(p, "/") {
		if err := t.expand(n); err != nil {
			return nil, err
		}
		c := n.children[name]
		switch {
		case c == nil && !create:
			return nil, nil
		case c == nil:
			m, err := t.dirMeta(defaultDirMeta)
			if err != nil {
				return nil, err
			}
			c = &node{dir: true, meta: m, children: map[string]*node{}, implicit: true}
			n.children[name] = c
		case !c.dir:
			return nil, fmt.Errorf("%s: goes through a file or symlink: %w", p, errdefs.ErrInvalid)
		}
		n = c
	}
	return n, t.expand(n)
}

// lookup returns the entry at p, or nil.
func (t *tree) lookup(p string) (*node, error) {
	parent, base := splitPath(p)
	d, err := t.dir(parent, false)
	if err != nil || d == nil {
		return nil, err
	}
	return d.children[base], nil
}

// write stores the dirtrees of every expanded directory and returns the root's.
func (t *tree) write() (tree, meta ostree.Checksum, err error) {
	c, err := t.writeNode(t.root)
	return c, t.root.meta, err
}

func (t *tree) writeNode(n *node) (ostree.Checksum, error) {
	if n.children == nil {
		return n.tree, nil
	}
	var dt ostree.DirTree
	names := make([]string, 0, len(n.children))
	for name := range n.children {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		c := n.children[name]
		if !c.dir {
			dt.Files = append(dt.Files, ostree.TreeFile{Name: name, Checksum: c.content})
			continue
		}
		sub, err := t.writeNode(c)
		if err != nil {
			return ostree.Checksum{}, err
		}
		dt.Dirs = append(dt.Dirs, ostree.TreeDir{Name: name, Tree: sub, Meta: c.meta})
	}
	dt.Sort()
	sum, err := t.txn.WriteMetadata(ostree.ObjectDirTree, dt.Marshal())
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("writing dirtree: %w", err)
	}
	n.tree = sum
	return sum, nil
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
	dst.meta = src.meta
	if err := srcTree.expand(src); err != nil {
		return err
	}
	if err := t.expand(dst); err != nil {
		return err
	}
	for name, c := range src.children {
		d := dst.children[name]
		if c.dir && d != nil && d.dir {
			if err := t.merge(d, c, srcTree); err != nil {
				return err
			}
			continue
		}
		dst.children[name] = c
	}
	return nil
}

// hasImplicit says whether a directory below n was only created as a parent: its metadata
// is made up, so the layer's tree cannot stand for the layer on its own.
func hasImplicit(n *node) bool {
	for _, c := range n.children {
		if c.dir && (c.implicit || hasImplicit(c)) {
			return true
		}
	}
	return false
}
