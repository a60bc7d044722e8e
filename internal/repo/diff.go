package repo

import (
	"context"
	"fmt"

	"github.com/strata-os/strata/internal/ostree"
)

// DiffResult lists the paths that diffWalker between two commits, each list
// in ostree's order (see Diff).
type DiffResult struct {
	Modified []string // same name in both, different content, metadata or type
	Removed  []string // only in the first commit (a directory, not its contents)
	Added    []string // only in the second commit (a directory and all its contents)
}

// Diff compares the trees of two revisions like `ostree diff` (libostree
// ostree_diff_dirs): a file is modified when its content checksum differs,
// which covers content, ownership, mode and xattrs; a directory when its
// dirmeta differs; an entry that changed between file and directory is
// modified, not removed and added. Unchanged subtrees (same dirtree) are
// skipped without reading them. Within a directory, files come before
// subdirectories, each sorted by name.
//
// Unlike ostree, a change of the root directory's own metadata is
// reported too, as a modified "/".
func Diff(ctx context.Context, r *Repo, revA, revB string) (*DiffResult, error) {
	var roots [2]*WalkEntry
	for i, rev := range []string{revA, revB} {
		c, err := r.ResolveRev(rev)
		if err != nil {
			return nil, fmt.Errorf("comparing %s and %s: %w", revA, revB, err)
		}
		if roots[i], err = CommitRoot(r, c); err != nil {
			return nil, fmt.Errorf("comparing %s and %s: %w", revA, revB, err)
		}
	}
	d := &diffWalker{ctx: ctx, r: r, res: &DiffResult{}}
	if roots[0].Meta != roots[1].Meta {
		d.res.Modified = append(d.res.Modified, "/")
	}
	if err := d.dirs("/", roots[0].Checksum, roots[1].Checksum); err != nil {
		return nil, fmt.Errorf("comparing %s and %s: %w", revA, revB, err)
	}
	return d.res, nil
}

type diffWalker struct {
	ctx context.Context
	r   *Repo
	res *DiffResult
}

// diffEntries lists a dirtree's entries in enumeration order: files, then
// directories.
func diffEntries(dir string, t ostree.DirTree) []WalkEntry {
	out := make([]WalkEntry, 0, len(t.Files)+len(t.Dirs))
	for _, f := range t.Files {
		out = append(out, WalkEntry{Path: joinTreePath(dir, f.Name), Kind: EntryFile, Checksum: f.Checksum})
	}
	for _, sd := range t.Dirs {
		out = append(out, WalkEntry{Path: joinTreePath(dir, sd.Name), Kind: EntryDir, Checksum: sd.Tree, Meta: sd.Meta})
	}
	return out
}

func (d *diffWalker) dirs(dir string, a, b ostree.Checksum) error {
	if a == b {
		return nil
	}
	if err := d.ctx.Err(); err != nil {
		return err
	}
	ta, err := d.r.readDirTreeChecked(a)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	tb, err := d.r.readDirTreeChecked(b)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	for _, ea := range diffEntries(dir, ta) {
		eb := findTreeEntry(tb, ea.Name())
		switch {
		case eb == nil:
			d.res.Removed = append(d.res.Removed, ea.Path)
		case eb.Kind != ea.Kind:
			d.res.Modified = append(d.res.Modified, ea.Path)
		case ea.Kind == EntryFile:
			if ea.Checksum != eb.Checksum {
				d.res.Modified = append(d.res.Modified, ea.Path)
			}
		default:
			if ea.Meta != eb.Meta {
				d.res.Modified = append(d.res.Modified, ea.Path)
			}
			if err := d.dirs(ea.Path, ea.Checksum, eb.Checksum); err != nil {
				return err
			}
		}
	}
	for _, eb := range diffEntries(dir, tb) {
		if findTreeEntry(ta, eb.Name()) != nil {
			continue
		}
		d.res.Added = append(d.res.Added, eb.Path)
		if eb.Kind == EntryDir {
			if err := d.added(eb.Path, eb.Checksum); err != nil {
				return err
			}
		}
	}
	return nil
}

// added lists everything below a new directory, depth first.
func (d *diffWalker) added(dir string, tree ostree.Checksum) error {
	t, err := d.r.readDirTreeChecked(tree)
	if err != nil {
		return fmt.Errorf("directory %s: %w", dir, err)
	}
	for _, e := range diffEntries(dir, t) {
		d.res.Added = append(d.res.Added, e.Path)
		if e.Kind == EntryDir {
			if err := d.added(e.Path, e.Checksum); err != nil {
				return err
			}
		}
	}
	return nil
}
