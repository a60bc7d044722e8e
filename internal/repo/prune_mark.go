package repo

import (
	"sort"

	"github.com/strata-os/strata/internal/ostree"
)

// The mark phase of prune is pure: it sees the repository only through
// the functions it is given, like containerd/containerd:pkg/gc/gc.go, so
// that it can be tested over hand-built graphs and the sweep is the only
// code that deletes.

// keepCommits returns the commits that history depth keeps: every head
// and, following parents, up to depth ancestors of it (depth < 0: all of
// them). parent returns a commit's parent (zero if it has none) and false
// if the commit itself is not stored, which ends that history, as a
// commit pulled without its history does. A commit reachable from several
// heads is kept if it is within depth of any of them.
func keepCommits(heads []ostree.Checksum, depth int, parent func(ostree.Checksum) (ostree.Checksum, bool, error)) (map[ostree.Checksum]struct{}, error) {
	kept := map[ostree.Checksum]struct{}{}
	best := map[ostree.Checksum]int{} // shortest distance from a head seen so far
	for _, h := range heads {
		for c, dist := h, 0; !c.IsZero() && (depth < 0 || dist <= depth); dist++ {
			if d, ok := best[c]; ok && d <= dist {
				break // walked from here already, at least as far
			}
			best[c] = dist
			p, ok, err := parent(c)
			if err != nil {
				return nil, err
			}
			if !ok {
				break
			}
			kept[c] = struct{}{}
			c = p
		}
	}
	return kept, nil
}

// mark returns every object reachable from roots, roots included, where
// refs lists the objects one object refers to: the tricolour walk of
// containerd's gc.Tricolor without the colours, since nothing changes
// under it (prune holds the repository lock exclusively).
func mark(roots []ostree.ObjectName, refs func(ostree.ObjectName) ([]ostree.ObjectName, error)) (map[ostree.ObjectName]struct{}, error) {
	reached := make(map[ostree.ObjectName]struct{}, len(roots))
	grey := append([]ostree.ObjectName(nil), roots...)
	for _, n := range roots {
		reached[n] = struct{}{}
	}
	for len(grey) > 0 {
		n := grey[len(grey)-1]
		grey = grey[:len(grey)-1]
		children, err := refs(n)
		if err != nil {
			return nil, err
		}
		for _, c := range children {
			if _, ok := reached[c]; !ok {
				reached[c] = struct{}{}
				grey = append(grey, c)
			}
		}
	}
	return reached, nil
}

// sweepOrder returns the stored objects that are not marked, in the order
// the sweep deletes them: commits first, then their detached metadata,
// then trees and content. A sweep interrupted at any point thus leaves no
// stored commit whose tree it has started to delete, and fsck clean.
// Tombstones and payload links are never swept: a tombstone records a
// deletion on purpose, and payload links are libostree's reflink index.
func sweepOrder(stored []ostree.ObjectName, marked map[ostree.ObjectName]struct{}) []ostree.ObjectName {
	rank := map[ostree.ObjectType]int{
		ostree.ObjectCommit:     0,
		ostree.ObjectCommitMeta: 1,
		ostree.ObjectDirTree:    2,
		ostree.ObjectDirMeta:    3,
		ostree.ObjectFile:       4,
	}
	var out []ostree.ObjectName
	for _, n := range stored {
		if _, ok := rank[n.Type]; !ok {
			continue
		}
		if _, ok := marked[n]; !ok {
			out = append(out, n)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return rank[out[i].Type] < rank[out[j].Type] })
	return out
}

// commitRefs lists what a commit refers to for mark: its root dirtree and
// dirmeta and its detached metadata (the parent is handled by
// keepCommits, so that history depth applies).
func commitRefs(c ostree.Checksum, cm *ostree.Commit) []ostree.ObjectName {
	return []ostree.ObjectName{
		{Checksum: cm.RootTree, Type: ostree.ObjectDirTree},
		{Checksum: cm.RootMeta, Type: ostree.ObjectDirMeta},
		{Checksum: c, Type: ostree.ObjectCommitMeta},
	}
}

// dirTreeRefs lists what a dirtree refers to.
func dirTreeRefs(t ostree.DirTree) []ostree.ObjectName {
	out := make([]ostree.ObjectName, 0, len(t.Files)+2*len(t.Dirs))
	for _, f := range t.Files {
		out = append(out, ostree.ObjectName{Checksum: f.Checksum, Type: ostree.ObjectFile})
	}
	for _, d := range t.Dirs {
		out = append(out,
			ostree.ObjectName{Checksum: d.Tree, Type: ostree.ObjectDirTree},
			ostree.ObjectName{Checksum: d.Meta, Type: ostree.ObjectDirMeta})
	}
	return out
}
