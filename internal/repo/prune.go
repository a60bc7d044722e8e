package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// KeepAllHistory is the PruneOptions.Depth that keeps every ancestor of
// every ref's commit.
const KeepAllHistory = -1

// PruneOptions tune Prune.
type PruneOptions struct {
	// Depth is how many parents of each ref's commit are kept:
	// KeepAllHistory (-1) keeps all, 0 only the commit the ref names,
	// like `ostree prune --refs-only --depth=N`. Note that the zero value
	// is 0: history is only kept when asked for.
	Depth int
	// DryRun computes and reports what would be deleted without deleting
	// anything.
	DryRun bool
	// Now is the clock that ages tmp/ entries; nil means time.Now.
	Now func() time.Time
}

// PruneStats describes what Prune deleted (or, with DryRun, would delete).
type PruneStats struct {
	DryRun    bool
	Objects   int64               // loose objects before pruning
	Reachable int64               // objects kept: reachable from refs within Depth
	Deleted   []ostree.ObjectName // objects deleted, in deletion order (commits first)
	Bytes     int64               // apparent size of the deleted objects
	Commits   int                 // commits among Deleted
	Markers   []ostree.Checksum   // commitpartial markers of commits no longer stored, removed
	Tmp       []string            // stale entries of tmp/ removed (names relative to tmp/)
	RefTemps  []string            // temporary files of interrupted ref writes removed (relative to the repository)
}

// Prune deletes what no ref needs. Under the exclusive repository lock
// (no transaction, strata's or libostree's, runs meanwhile; Prune waits
// for running ones up to the lock timeout) it:
//
//  1. reads every ref: refs/heads (deployment refs ostree/N/M/I
//     included), refs/remotes and refs/mirrors. A ref that cannot be read
//     or does not hold a checksum stops the prune: what it protects is
//     unknown.
//  2. marks (prune_mark.go, pure): the commits within Depth of each ref,
//     and everything their trees and detached metadata reach. Objects a
//     partial commit lacks are simply not there; a dirtree or commit that
//     is stored but unreadable or corrupt stops the prune, since its
//     children cannot be known.
//  3. sweeps every other loose object: commits first, made durable with
//     syncfs, then detached metadata, dirtrees, dirmetas and content, so
//     an interrupted prune never leaves a commit with a deleted tree. Then
//     commitpartial markers of commits that are gone, and stale tmp/
//     entries: staging directories of other boots or older than
//     core.tmp-expiry-secs (default one day) and not locked by a live
//     transaction, and any other entry but tmp/cache older than that,
//     which is when libostree removes them. Staging directories of this
//     boot are kept: the next transaction adopts them (see Txn).
func Prune(ctx context.Context, r *Repo, opts PruneOptions) (PruneStats, error) {
	st := PruneStats{DryRun: opts.DryRun}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	unlock, err := r.LockExclusive()
	if err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	defer unlock()
	refs, err := r.scanRefs()
	if err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	heads := make([]ostree.Checksum, 0, len(refs))
	for _, e := range refs {
		if e.err != nil {
			return st, fmt.Errorf("pruning repository %s: ref %s: %w", r.path, e.label, e.err)
		}
		heads = append(heads, e.checksum)
	}
	objs, err := r.listLoose()
	if err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	st.Objects = int64(len(objs))
	g := &pruneGraph{r: r, commits: map[ostree.Checksum]*ostree.Commit{}}
	kept, err := keepCommits(heads, opts.Depth, g.parent)
	if err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	roots := make([]ostree.ObjectName, 0, len(kept))
	for c := range kept {
		roots = append(roots, ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
	}
	marked, err := mark(roots, g.refs)
	if err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	stored := make([]ostree.ObjectName, len(objs))
	paths := make(map[ostree.ObjectName]string, len(objs))
	for i, o := range objs {
		stored[i] = o.name
		paths[o.name] = o.path
	}
	victims := sweepOrder(stored, marked)
	st.Reachable = st.Objects - int64(len(victims))
	if err := r.sweep(ctx, victims, paths, &st); err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	if err := r.removeStaleMarkers(&st); err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	if err := r.removeStaleTmp(opts.Now(), &st); err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	if err := r.removeRefTemps(&st); err != nil {
		return st, fmt.Errorf("pruning repository %s: %w", r.path, err)
	}
	return st, nil
}

// removeRefTemps deletes the temporary files (".NAME.tmp-*") that a ref
// write killed before its rename leaves under refs/. Ref writes take the
// shared repository lock, so under Prune's exclusive lock none is live.
func (r *Repo) removeRefTemps(st *PruneStats) error {
	root := filepath.Join(r.path, "refs")
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || !strings.HasPrefix(name, ".") || !strings.Contains(name, ".tmp-") {
			return nil
		}
		if !st.DryRun {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing %s: %w", p, err)
			}
		}
		rel, _ := filepath.Rel(r.path, p)
		st.RefTemps = append(st.RefTemps, rel)
		return nil
	})
}

// pruneGraph is the repository as mark sees it: commits and dirtrees read
// on demand.
type pruneGraph struct {
	r       *Repo
	commits map[ostree.Checksum]*ostree.Commit
}

func (g *pruneGraph) commit(c ostree.Checksum) (*ostree.Commit, bool, error) {
	if cm, ok := g.commits[c]; ok {
		return cm, true, nil
	}
	b, err := g.read(ostree.ObjectCommit, c)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	cm, err := ostree.ParseCommit(b)
	if err != nil {
		return nil, false, fmt.Errorf("commit %s: %w", c, err)
	}
	g.commits[c] = cm
	return cm, true, nil
}

// read reads a metadata object verified (ReadMetadata): a damaged tree
// must stop the prune rather than decide what it deletes.
func (g *pruneGraph) read(typ ostree.ObjectType, c ostree.Checksum) ([]byte, error) {
	return g.r.ReadMetadata(typ, c)
}

func (g *pruneGraph) parent(c ostree.Checksum) (ostree.Checksum, bool, error) {
	cm, ok, err := g.commit(c)
	if !ok || err != nil {
		return ostree.Checksum{}, ok, err
	}
	return cm.Parent, true, nil
}

func (g *pruneGraph) refs(n ostree.ObjectName) ([]ostree.ObjectName, error) {
	switch n.Type {
	case ostree.ObjectCommit:
		cm, ok, err := g.commit(n.Checksum)
		if !ok || err != nil {
			return nil, err
		}
		return commitRefs(n.Checksum, cm), nil
	case ostree.ObjectDirTree:
		b, err := g.read(ostree.ObjectDirTree, n.Checksum)
		if errors.Is(err, errdefs.ErrNotFound) {
			return nil, nil // a partial commit's missing subtree
		}
		if err != nil {
			return nil, err
		}
		t, err := ostree.ParseDirTree(b)
		if err != nil {
			return nil, fmt.Errorf("dirtree %s: %w", n.Checksum, err)
		}
		return dirTreeRefs(t), nil
	}
	return nil, nil
}

// sweep deletes victims (sweepOrder's order) and counts them into st.
func (r *Repo) sweep(ctx context.Context, victims []ostree.ObjectName, paths map[ostree.ObjectName]string, st *PruneStats) error {
	commitsDurable := false
	for _, n := range victims {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := paths[n]
		if n.Type != ostree.ObjectCommit && !commitsDurable && !st.DryRun && r.fsync {
			// The commits' removal must reach the disk before any of
			// their trees' does.
			if err := fsutil.SyncFS(filepath.Join(r.path, "objects")); err != nil {
				return err
			}
			commitsDurable = true
		}
		var s unix.Stat_t
		if err := unix.Lstat(p, &s); err != nil {
			if errors.Is(err, unix.ENOENT) {
				continue
			}
			return fmt.Errorf("deleting object %s: %w", n, err)
		}
		if !st.DryRun {
			if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("deleting object %s: %w", n, err)
			}
		}
		st.Deleted = append(st.Deleted, n)
		st.Bytes += s.Size
		if n.Type == ostree.ObjectCommit {
			st.Commits++
		}
	}
	if len(st.Deleted) > 0 && !st.DryRun && r.fsync {
		return fsutil.SyncFS(filepath.Join(r.path, "objects"))
	}
	return nil
}

// removeStaleMarkers removes the commitpartial markers of commits that
// are no longer stored.
func (r *Repo) removeStaleMarkers(st *PruneStats) error {
	partial, err := r.partialCommits()
	if err != nil {
		return err
	}
	deleted := map[ostree.Checksum]bool{}
	for _, n := range st.Deleted {
		if n.Type == ostree.ObjectCommit {
			deleted[n.Checksum] = true
		}
	}
	for c := range partial {
		n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}
		if has, err := r.HasObject(n); err != nil {
			return err
		} else if has && !(st.DryRun && deleted[c]) {
			continue
		}
		if !st.DryRun {
			err := os.Remove(filepath.Join(r.path, "state", c.String()+".commitpartial"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("removing commitpartial marker of %s: %w", c, err)
			}
		}
		st.Markers = append(st.Markers, c)
	}
	return nil
}

// removeStaleTmp removes what interrupted work left in tmp/ (see Prune).
func (r *Repo) removeStaleTmp(now time.Time, st *PruneStats) error {
	expiry, err := r.config.GetInt("core", "tmp-expiry-secs", 86400)
	if err != nil {
		return err
	}
	tmp := filepath.Join(r.path, "tmp")
	ents, err := os.ReadDir(tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("listing tmp: %w", err)
	}
	thisBoot := "staging-" + bootID() + "-"
	for _, e := range ents {
		name := e.Name()
		if name == "cache" {
			continue
		}
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("inspecting tmp/%s: %w", name, err)
		}
		old := now.Sub(info.ModTime()) > time.Duration(expiry)*time.Second
		p := filepath.Join(tmp, name)
		if e.IsDir() && strings.HasPrefix(name, "staging-") {
			if strings.HasPrefix(name, thisBoot) && !old {
				continue
			}
			fd, ok := tryLockDir(p)
			if !ok {
				continue // a live transaction of a process that does not take the repository lock
			}
			if !st.DryRun {
				err = os.RemoveAll(p)
			}
			unix.Close(fd)
		} else if old {
			if !st.DryRun {
				err = os.RemoveAll(p)
			}
		} else {
			continue
		}
		if err != nil {
			return fmt.Errorf("removing tmp/%s: %w", name, err)
		}
		st.Tmp = append(st.Tmp, name)
	}
	return nil
}
