package repo

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"sync"

	"github.com/strata-os/strata/internal/ostree"
)

// FsckProblemKind says what is wrong with an object or ref.
type FsckProblemKind string

// The kinds of problems Fsck reports. Every kind but FsckPartial makes
// the repository fail the check.
const (
	// FsckCorrupt: the object's bytes do not hash to its name, do not
	// parse, or are truncated; or a ref file does not hold a checksum.
	FsckCorrupt FsckProblemKind = "corrupt"
	// FsckMissing: an object that a complete commit (or a ref) needs is
	// not in the repository.
	FsckMissing FsckProblemKind = "missing"
	// FsckUnreadable: the object or ref exists but reading it failed
	// (EIO, EACCES, ...).
	FsckUnreadable FsckProblemKind = "unreadable"
	// FsckPartial: an object needed only by partial commits (those with a
	// state/CHECKSUM.commitpartial marker, left by an interrupted or
	// metadata-only pull) is missing. Expected, so not an error; libostree
	// skips partial commits the same way.
	FsckPartial FsckProblemKind = "partial"
	// FsckSignature: a commit reachable from a ref has no valid signature
	// by a trusted key (only with FsckOptions.VerifyCommit).
	FsckSignature FsckProblemKind = "signature"
)

// FsckProblem is one finding of Fsck.
type FsckProblem struct {
	Kind   FsckProblemKind
	Object ostree.ObjectName // zero Type for a problem with a ref file itself
	Ref    string            // the ref concerned, if any ("REMOTE:NAME" for remote refs)
	Commit ostree.Checksum   // for missing objects: a commit whose tree needs it
	Path   string            // for missing objects: where in that tree
	Reason string
}

// IsError reports whether the problem makes the repository fail fsck.
func (p FsckProblem) IsError() bool { return p.Kind != FsckPartial }

// String renders the problem as one line, such as
// "corrupt dirtree object 0b51…: content hashes to 7c3e…".
func (p FsckProblem) String() string {
	var s string
	switch {
	case p.Object.Type == 0:
		s = fmt.Sprintf("%s ref %s", p.Kind, p.Ref)
	case p.Kind == FsckSignature:
		s = fmt.Sprintf("unverified commit %s", p.Object.Checksum)
	default:
		s = fmt.Sprintf("%s %s object %s", p.Kind, p.Object.Type, p.Object.Checksum)
	}
	if p.Object.Type != 0 && p.Ref != "" {
		s += " (ref " + p.Ref + ")"
	}
	if !p.Commit.IsZero() {
		s += fmt.Sprintf(" (in commit %s at %s)", p.Commit, p.Path)
	}
	if p.Reason != "" {
		s += ": " + p.Reason
	}
	return s
}

// FsckReport is the result of Fsck.
type FsckReport struct {
	Objects        int64                       // loose objects checked
	ObjectsByType  map[ostree.ObjectType]int64 // the same, per type
	Bytes          int64                       // object bytes read (compressed size for .filez)
	Refs           int                         // refs checked
	Commits        int                         // commits whose tree was walked
	PartialCommits int                         // of those, partial ones
	Verified       int                         // commits whose signature VerifyCommit accepted
	Problems       []FsckProblem               // errors first, then partial objects; each by object
}

// OK reports whether the repository passed: no problem but partial ones.
func (r *FsckReport) OK() bool { return r.Errors() == 0 }

// Errors counts the problems that fail the check.
func (r *FsckReport) Errors() int {
	n := 0
	for _, p := range r.Problems {
		if p.IsError() {
			n++
		}
	}
	return n
}

// Count counts the problems of one kind.
func (r *FsckReport) Count(k FsckProblemKind) int {
	n := 0
	for _, p := range r.Problems {
		if p.Kind == k {
			n++
		}
	}
	return n
}

// FsckOptions tune Fsck. The zero value checks everything but signatures
// on GOMAXPROCS goroutines.
type FsckOptions struct {
	// Progress, if set, is told the number of loose objects (SetTotal)
	// and each one checked (Add). Its methods may be called from several
	// goroutines at once.
	Progress interface {
		SetTotal(n int64)
		Add(n int64)
	}
	// VerifyCommit, if set, is called for every commit reachable from a
	// ref (the ref's commit and those of its ancestors that are present)
	// with the commit's bytes and its detached metadata (nil if it has
	// none); an error is reported as an FsckSignature problem. It is
	// where signature checking (package sign) plugs in.
	VerifyCommit func(commit ostree.Checksum, commitBytes, detachedMeta []byte) error
	// Workers bounds the goroutines that check objects; 0 means
	// GOMAXPROCS.
	Workers int
}

// Fsck checks the whole repository and reports every problem it finds;
// the error is for failures to run the check at all (an unlistable
// objects directory, a cancelled ctx), not for what it finds.
//
// It runs in three passes:
//
//  1. Every loose object is read once, on a pool of workers: metadata
//     objects must hash to their names and be normal-form GVariants that
//     the internal/ostree parsers accept (detached metadata and
//     tombstones parse as a{sv}); content objects are decoded as the
//     repository's mode stores them (archive: header and inflated
//     payload; bare-user: user.ostreemeta and payload; bare: stat, xattrs
//     and payload; bare-user-only: stat with canonical ownership) and
//     their content checksum must equal their name.
//  2. Every ref must hold a checksum naming a stored commit.
//  3. From every stored commit, the tree is walked over the dirtrees read
//     in pass 1: every dirtree, dirmeta and content object it names must
//     exist. Missing objects of partial commits (docs/formats/repository.md,
//     state/CHECKSUM.commitpartial) are reported as FsckPartial. A missing
//     parent commit is normal (history not pulled) and not reported.
//
// With VerifyCommit, the commits reachable from refs are then checked.
//
// Fsck holds the repository lock shared, like a transaction: a prune
// cannot delete objects under it, while commits and pulls go on. An
// object that a transaction makes visible after it was listed is not
// reported missing (pass 3 looks again before it reports one).
func Fsck(ctx context.Context, r *Repo, opts FsckOptions) (*FsckReport, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	unlock, err := r.readLock()
	if err != nil {
		return nil, fmt.Errorf("checking repository %s: %w", r.path, err)
	}
	defer unlock()
	rep := &FsckReport{ObjectsByType: map[ostree.ObjectType]int64{}}
	g, err := r.checkObjects(ctx, opts, rep)
	if err != nil {
		return nil, fmt.Errorf("checking repository %s: %w", r.path, err)
	}
	refs, err := r.checkRefs(g, rep)
	if err != nil {
		return nil, fmt.Errorf("checking repository %s: %w", r.path, err)
	}
	partial, err := r.partialCommits()
	if err != nil {
		return nil, fmt.Errorf("checking repository %s: %w", r.path, err)
	}
	rep.Problems = append(rep.Problems, g.reach(partial, r.HasObject, rep)...)
	if opts.VerifyCommit != nil {
		r.verifyCommits(g, refs, opts.VerifyCommit, rep)
	}
	sortProblems(rep.Problems)
	return rep, nil
}

func sortProblems(ps []FsckProblem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if a.IsError() != b.IsError() {
			return a.IsError()
		}
		if a.Object.Checksum != b.Object.Checksum {
			return string(a.Object.Checksum[:]) < string(b.Object.Checksum[:])
		}
		if a.Object.Type != b.Object.Type {
			return a.Object.Type < b.Object.Type
		}
		return a.Ref < b.Ref
	})
}

// looseObject is an entry of objects/ as listed: its name and file path.
type looseObject struct {
	name ostree.ObjectName
	path string
}

// fsckGraph is what pass 1 learns: which objects exist, and the parsed
// dirtrees and commits that pass 3 walks without reading anything again.
// A damaged dirtree or commit is absent from trees and commits, so pass 3
// does not descend into it.
type fsckGraph struct {
	mu          sync.Mutex
	present     map[ostree.ObjectName]struct{}
	trees       map[ostree.Checksum]ostree.DirTree
	commits     map[ostree.Checksum]*ostree.Commit
	commitBytes map[ostree.Checksum][]byte
	problems    []FsckProblem
}

func (g *fsckGraph) has(n ostree.ObjectName) bool {
	_, ok := g.present[n]
	return ok
}

// checkObjects is pass 1. The workers start on the first objects while
// objects/ is still being listed.
func (r *Repo) checkObjects(ctx context.Context, opts FsckOptions, rep *FsckReport) (*fsckGraph, error) {
	g := &fsckGraph{
		present:     map[ostree.ObjectName]struct{}{},
		trees:       map[ostree.Checksum]ostree.DirTree{},
		commits:     map[ostree.Checksum]*ostree.Commit{},
		commitBytes: map[ostree.Checksum][]byte{},
	}
	jobs := make(chan looseObject, 1024)
	var wg sync.WaitGroup
	var bytesMu sync.Mutex
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int64
			c := newObjectChecker(r.mode)
			for o := range jobs {
				n += g.checkOne(c, o)
				if opts.Progress != nil {
					opts.Progress.Add(1)
				}
			}
			bytesMu.Lock()
			rep.Bytes += n
			bytesMu.Unlock()
		}()
	}
	err := r.walkLoose(func(o looseObject) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		g.mu.Lock()
		g.present[o.name] = struct{}{}
		g.mu.Unlock()
		rep.Objects++
		rep.ObjectsByType[o.name.Type]++
		jobs <- o
		return nil
	})
	if err == nil && opts.Progress != nil {
		opts.Progress.SetTotal(rep.Objects)
	}
	close(jobs)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	rep.Problems = append(rep.Problems, g.problems...)
	g.problems = nil
	return g, nil
}

// checkOne verifies one object and records what pass 3 needs. It returns
// the number of bytes read.
func (g *fsckGraph) checkOne(c *objectChecker, o looseObject) int64 {
	res := c.check(o)
	g.mu.Lock()
	defer g.mu.Unlock()
	if res.err != nil {
		kind := classifyFsckError(res.err)
		if kind == FsckMissing {
			// Deleted since the listing (a concurrent prune): it is
			// judged like any absent object in pass 3.
			delete(g.present, o.name)
			return res.bytes
		}
		g.problems = append(g.problems, FsckProblem{Kind: kind, Object: o.name, Reason: res.err.Error()})
		return res.bytes
	}
	switch o.name.Type {
	case ostree.ObjectDirTree:
		g.trees[o.name.Checksum] = res.tree
	case ostree.ObjectCommit:
		g.commits[o.name.Checksum] = res.commit
		g.commitBytes[o.name.Checksum] = res.data
	}
	return res.bytes
}
