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

// ltree builds a derived commit's tree inside a transaction (a repo.MutableTree over the
// base's tree: only the dirtrees on changed paths are read and written again) and counts
// what it writes.
type ltree struct {
	*repo.MutableTree
	r     *repo.Repo
	txn   *repo.Txn
	stats *DeriveStats
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
func (t *ltree) apply(ctx context.Context, n *repo.TreeNode, dir, rel string) error {
	if err := t.Expand(n); err != nil {
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
			delete(n.Children, name) // whiteout
		case unix.S_IFDIR:
			xs, err := upperXattrs(p)
			if err != nil {
				return err
			}
			opaque, err := fsutil.Lgetxattr(p, "trusted.overlay.opaque")
			if err != nil && !errors.Is(err, unix.ENODATA) {
				return fmt.Errorf("reading xattrs of %s: %w", p, err)
			}
			c := n.Children[name]
			if c == nil || !c.Dir || string(opaque) == "y" {
				c = &repo.TreeNode{Dir: true, Children: map[string]*repo.TreeNode{}}
				n.Children[name] = c
			}
			if c.Meta, err = t.writeMeta(ostree.ObjectDirMeta,
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
			n.Children[name] = &repo.TreeNode{Content: sum}
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
	t := &ltree{MutableTree: repo.NewMutableTree(txn, bc.RootTree, bc.RootMeta), r: r, txn: txn, stats: &res.Stats}
	t.SetMetadataWriter(t.writeMeta)
	if err := t.apply(ctx, t.Root, upper, ""); err != nil {
		return fmt.Errorf("applying the packages' changes: %w", err)
	}
	rootTree, rootMeta, err := t.Write()
	if err != nil {
		return err
	}
	subject := "Layered on " + base.String()
	if v := bc.Version(); v != "" {
		subject = "Layered on " + v
	}
	c := ostree.Commit{Metadata: layerMetadata(bc.Metadata, res.Packages, q), Parent: base,
		Subject: subject, Timestamp: bc.Timestamp, RootTree: rootTree, RootMeta: rootMeta}
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
