package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// lnode is an entry of the tree a derived commit is built in. A directory
// of the base stays its (dirtree, dirmeta) pair until the upper layer
// changes something below it, so only the dirtrees on changed paths are
// read and written again.
type lnode struct {
	dir      bool
	meta     ostree.Checksum   // dirmeta (directories)
	tree     ostree.Checksum   // dirtree while children is nil
	children map[string]*lnode // nil: not read yet
	content  ostree.Checksum   // content object (files and symlinks)
}

// ltree builds a derived commit's tree inside a transaction and counts
// what it writes.
type ltree struct {
	r     *repo.Repo
	txn   *repo.Txn
	root  *lnode
	stats *DeriveStats
}

func (t *ltree) expand(n *lnode) error {
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
	n.children = make(map[string]*lnode, len(dt.Files)+len(dt.Dirs))
	for _, f := range dt.Files {
		n.children[f.Name] = &lnode{content: f.Checksum}
	}
	for _, d := range dt.Dirs {
		n.children[d.Name] = &lnode{dir: true, tree: d.Tree, meta: d.Meta}
	}
	return nil
}

// isNew says whether the object the transaction just stored is new to the
// repository (staged objects become visible only at the commit point).
func (t *ltree) isNew(typ ostree.ObjectType, c ostree.Checksum) bool {
	ok, err := t.r.HasObject(ostree.ObjectName{Checksum: c, Type: typ})
	return err == nil && !ok
}

func (t *ltree) writeMeta(typ ostree.ObjectType, b []byte) (ostree.Checksum, error) {
	c, err := t.txn.WriteMetadata(typ, b)
	if err != nil {
		return c, fmt.Errorf("writing %s: %w", typ, err)
	}
	if t.isNew(typ, c) {
		t.stats.MetaWritten++
	}
	return c, nil
}

// upperXattrs reads a file's extended attributes, without overlayfs's own.
func upperXattrs(p string) ([]ostree.Xattr, error) {
	names, values, err := fsutil.Llistxattr(p)
	if err != nil {
		return nil, fmt.Errorf("reading xattrs of %s: %w", p, err)
	}
	var xs []ostree.Xattr
	for i, n := range names {
		if strings.HasPrefix(n, "trusted.overlay.") {
			continue
		}
		xs = append(xs, ostree.Xattr{Name: n, Value: values[i]})
	}
	return ostree.CanonicalXattrs(xs), nil
}

// apply lays the overlayfs upper directory dir (tree path rel) over n.
func (t *ltree) apply(ctx context.Context, n *lnode, dir, rel string) error {
	if err := t.expand(n); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name, p := e.Name(), filepath.Join(dir, e.Name())
		where := strings.TrimPrefix(rel+"/"+name, "/")
		if rel == "" && slices.Contains([]string{"etc", "proc", "dev", "tmp", "run", "var"}, name) {
			// Mount points of the chroot: /etc is /usr/etc, the others are
			// empty in a commit.
			continue
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			if st.Rdev != 0 {
				return fmt.Errorf("/%s: a device node cannot be committed: %w", where, errdefs.ErrInvalid)
			}
			delete(n.children, name) // whiteout
		case unix.S_IFDIR:
			xs, err := upperXattrs(p)
			if err != nil {
				return err
			}
			opaque, err := fsutil.Lgetxattr(p, "trusted.overlay.opaque")
			if err != nil && !errors.Is(err, unix.ENODATA) {
				return fmt.Errorf("reading xattrs of %s: %w", p, err)
			}
			c := n.children[name]
			if c == nil || !c.dir || string(opaque) == "y" {
				c = &lnode{dir: true, children: map[string]*lnode{}}
				n.children[name] = c
			}
			if c.meta, err = t.writeMeta(ostree.ObjectDirMeta,
				ostree.DirMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: xs}.Marshal()); err != nil {
				return err
			}
			if err := t.apply(ctx, c, p, where); err != nil {
				return err
			}
		case unix.S_IFREG, unix.S_IFLNK:
			sum, err := t.writeFile(p, &st)
			if err != nil {
				return fmt.Errorf("/%s: %w", where, err)
			}
			n.children[name] = &lnode{content: sum}
		default:
			return fmt.Errorf("/%s: a FIFO or socket cannot be committed: %w", where, errdefs.ErrInvalid)
		}
	}
	return nil
}

// writeFile stores the regular file or symlink at p as a content object.
func (t *ltree) writeFile(p string, st *unix.Stat_t) (ostree.Checksum, error) {
	xs, err := upperXattrs(p)
	if err != nil {
		return ostree.Checksum{}, err
	}
	fi := ostree.FileInfo{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: xs}
	var sum ostree.Checksum
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		if fi.SymlinkTarget, err = os.Readlink(p); err != nil {
			return sum, err
		}
		sum, err = t.txn.WriteContent(fi, strings.NewReader(""), 0, nil)
	} else {
		f, oerr := os.OpenFile(p, os.O_RDONLY|unix.O_NOFOLLOW, 0)
		if oerr != nil {
			return sum, oerr
		}
		sum, err = t.txn.WriteContent(fi, f, st.Size, nil)
		f.Close()
	}
	if err != nil {
		return sum, err
	}
	if t.isNew(ostree.ObjectFile, sum) {
		t.stats.ContentWritten++
		t.stats.BytesWritten += st.Size
	} else {
		t.stats.ContentReused++
	}
	return sum, nil
}

// write stores the dirtrees of every directory read or changed, bottom up.
func (t *ltree) write(n *lnode) (ostree.Checksum, error) {
	if n.children == nil {
		return n.tree, nil
	}
	var dt ostree.DirTree
	for name, c := range n.children {
		if !c.dir {
			dt.Files = append(dt.Files, ostree.TreeFile{Name: name, Checksum: c.content})
			continue
		}
		sub, err := t.write(c)
		if err != nil {
			return ostree.Checksum{}, err
		}
		dt.Dirs = append(dt.Dirs, ostree.TreeDir{Name: name, Tree: sub, Meta: c.meta})
	}
	dt.Sort()
	return t.writeMeta(ostree.ObjectDirTree, dt.Marshal())
}

// commitDerived writes the derived commit: base's tree with the upper
// directory applied, base as parent, base's time (deriving the same
// packages on the same base gives the same tree), the layer's metadata.
func commitDerived(ctx context.Context, r *repo.Repo, bc *ostree.Commit, base ostree.Checksum, upper string, q DeriveRequest, res *DeriveResult) (err error) {
	status, err := os.ReadFile(filepath.Join(upper, DpkgDatabase, "status"))
	if errors.Is(err, os.ErrNotExist) && !q.Empty() {
		return fmt.Errorf("the packages left no dpkg database in /%s: %w", DpkgDatabase, errdefs.ErrInvalid)
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if status != nil {
		if res.Packages, err = ParseDpkgStatus(status, ""); err != nil {
			return err
		}
	} else if res.Packages, _, err = CommitPackages(bc.Metadata); err != nil {
		return err
	}
	txn, err := r.Begin()
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, txn.Abort())
		}
	}()
	t := &ltree{r: r, txn: txn, stats: &res.Stats, root: &lnode{dir: true, tree: bc.RootTree, meta: bc.RootMeta}}
	if err := t.apply(ctx, t.root, upper, ""); err != nil {
		return fmt.Errorf("applying the packages' changes: %w", err)
	}
	rootTree, err := t.write(t.root)
	if err != nil {
		return err
	}
	subject := "Layered on " + base.String()
	if v := bc.Version(); v != "" {
		subject = "Layered on " + v
	}
	c := ostree.Commit{Metadata: layerMetadata(bc.Metadata, res.Packages, q), Parent: base,
		Subject: subject, Timestamp: bc.Timestamp, RootTree: rootTree, RootMeta: t.root.meta}
	b, err := c.Marshal()
	if err != nil {
		return fmt.Errorf("encoding the derived commit: %w", err)
	}
	if res.Commit, err = t.writeMeta(ostree.ObjectCommit, b); err != nil {
		return err
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("committing derived commit %s: %w", res.Commit, err)
	}
	return nil
}
