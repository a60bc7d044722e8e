package image

import (
	"context"
	"errors"
	"fmt"
	"runtime"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"golang.org/x/sync/errgroup"
)

// copyCommit copies commit c with its tree and detached metadata from src
// into dst (any modes: objects are converted on the way in), in one
// transaction that also sets ref (remote "" for refs/heads). Every
// object is verified against its checksum as it is written.
func copyCommit(ctx context.Context, src, dst *repo.Repo, c ostree.Checksum, remote, ref string, progress func(int64)) error {
	txn, err := dst.Begin()
	if err != nil {
		return fmt.Errorf("copying commit %s: %w", c, err)
	}
	committed := false
	defer func() {
		if !committed {
			txn.Abort()
		}
	}()
	files := make(chan ostree.Checksum, 256)
	g, gctx := errgroup.WithContext(ctx)
	for range max(2, runtime.NumCPU()) {
		g.Go(func() error {
			for fc := range files {
				if err := copyContent(src, txn, fc); err != nil {
					return err
				}
				if progress != nil {
					progress(1)
				}
			}
			return nil
		})
	}
	seen := map[ostree.Checksum]bool{}
	walkErr := repo.WalkCommit(gctx, src, c, func(e *repo.WalkEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Kind == repo.EntryDir {
			for _, m := range []ostree.ObjectName{{Checksum: e.Checksum, Type: ostree.ObjectDirTree}, {Checksum: e.Meta, Type: ostree.ObjectDirMeta}} {
				if err := copyMeta(src, txn, m); err != nil {
					return err
				}
			}
			return nil
		}
		if seen[e.Checksum] {
			return nil
		}
		seen[e.Checksum] = true
		select {
		case files <- e.Checksum:
			return nil
		case <-gctx.Done():
			return gctx.Err()
		}
	})
	close(files)
	if err := errors.Join(walkErr, g.Wait()); err != nil {
		return fmt.Errorf("copying commit %s: %w", c, err)
	}
	if err := copyMeta(src, txn, ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}); err != nil {
		return fmt.Errorf("copying commit %s: %w", c, err)
	}
	meta, err := src.ReadCommitMeta(c)
	if err != nil {
		return fmt.Errorf("reading detached metadata of %s: %w", c, err)
	}
	if meta != nil {
		if err := txn.WriteCommitMeta(c, meta); err != nil {
			return fmt.Errorf("copying detached metadata of %s: %w", c, err)
		}
	}
	if ref != "" {
		if err := txn.SetRef(remote, ref, c); err != nil {
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("copying commit %s: %w", c, err)
	}
	committed = true
	return nil
}

func copyMeta(src *repo.Repo, txn *repo.Txn, n ostree.ObjectName) error {
	if ok, err := txn.HasObject(n); ok || err != nil {
		return err
	}
	data, err := src.ReadMetadata(n.Type, n.Checksum)
	if err != nil {
		return fmt.Errorf("reading %s: %w", n, err)
	}
	if err := txn.WriteMetadataExpect(n.Type, n.Checksum, data); err != nil {
		return fmt.Errorf("writing %s: %w", n, err)
	}
	return nil
}

func copyContent(src *repo.Repo, txn *repo.Txn, c ostree.Checksum) error {
	if ok, err := txn.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}); ok || err != nil {
		return err
	}
	obj, err := src.OpenContent(c)
	if err != nil {
		return fmt.Errorf("reading content object %s: %w", c, err)
	}
	defer obj.Close()
	if _, err := txn.WriteContent(obj.Info, obj, obj.Size, &c); err != nil {
		return fmt.Errorf("writing content object %s: %w", c, err)
	}
	return nil
}
