package repo

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// refEntry is one ref file as scanRefs found it.
type refEntry struct {
	label    string // "NAME", "REMOTE:NAME" or "(COLLECTION, NAME)"
	checksum ostree.Checksum
	err      error // reading or parsing the file failed
}

// scanRefs reads every ref in refs/heads (deployment refs ostree/N/M/I
// included), refs/remotes and refs/mirrors. Unlike ListRefs it does not
// stop at the first bad ref: each entry carries its own error. Dot files
// are the temp files of an interrupted atomic ref write, not refs.
func (r *Repo) scanRefs() ([]refEntry, error) {
	var out []refEntry
	walk := func(base string, label func(name string) string) error {
		return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) && p == base {
				return nil
			}
			if err != nil {
				return err
			}
			if strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() && p != base {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			rel, _ := filepath.Rel(base, p)
			e := refEntry{label: label(filepath.ToSlash(rel))}
			b, err := os.ReadFile(p)
			switch {
			case err != nil:
				e.err = &objectReadError{err}
			case !ostree.IsChecksum(strings.TrimSpace(string(b))):
				e.err = fmt.Errorf("does not hold a checksum: %w", errdefs.ErrCorrupt)
			default:
				e.checksum, _ = ostree.ParseChecksum(strings.TrimSpace(string(b)))
			}
			out = append(out, e)
			return nil
		})
	}
	refs := filepath.Join(r.path, "refs")
	if err := walk(filepath.Join(refs, "heads"), func(n string) string { return n }); err != nil {
		return nil, fmt.Errorf("listing refs: %w", err)
	}
	for _, kind := range []string{"remotes", "mirrors"} {
		dirs, err := os.ReadDir(filepath.Join(refs, kind))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("listing refs: %w", err)
		}
		for _, d := range dirs {
			if !d.IsDir() || strings.HasPrefix(d.Name(), ".") {
				continue
			}
			owner := d.Name()
			label := func(n string) string { return owner + ":" + n }
			if kind == "mirrors" {
				label = func(n string) string { return "(" + owner + ", " + n + ")" }
			}
			if err := walk(filepath.Join(refs, kind, owner), label); err != nil {
				return nil, fmt.Errorf("listing refs: %w", err)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].label < out[j].label })
	return out, nil
}

// checkRefs is pass 2: every ref must name a stored commit. It returns
// the refs that do.
func (r *Repo) checkRefs(g *fsckGraph, rep *FsckReport) ([]refEntry, error) {
	refs, err := r.scanRefs()
	if err != nil {
		return nil, err
	}
	rep.Refs = len(refs)
	var good []refEntry
	for _, e := range refs {
		if e.err != nil {
			rep.Problems = append(rep.Problems, FsckProblem{Kind: classifyFsckError(e.err), Ref: e.label, Reason: e.err.Error()})
			continue
		}
		n := ostree.ObjectName{Checksum: e.checksum, Type: ostree.ObjectCommit}
		if !g.has(n) {
			rep.Problems = append(rep.Problems, FsckProblem{Kind: FsckMissing, Object: n, Ref: e.label,
				Reason: "the ref points at a commit that is not in the repository"})
			continue
		}
		good = append(good, e)
	}
	return good, nil
}

// partialCommits returns the commits with a state/CHECKSUM.commitpartial
// marker, mapped to whether the commit counts as partial: a marker that
// `ostree fsck` wrote on finding the tree damaged holds "f" (libostree's
// FSCK_PARTIAL state), and such a commit is judged as complete, so that
// what it lacks is an error, as libostree's fsck reports it.
func (r *Repo) partialCommits() (map[ostree.Checksum]bool, error) {
	dir := filepath.Join(r.path, "state")
	names, err := readDirUnsorted(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return map[ostree.Checksum]bool{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing commit state: %w", err)
	}
	out := map[ostree.Checksum]bool{}
	for _, n := range names {
		hex, ok := strings.CutSuffix(n, ".commitpartial")
		c, err := ostree.ParseChecksum(hex)
		if !ok || err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("reading commit state: %w", err)
		}
		out[c] = !bytes.HasPrefix(b, []byte("f"))
	}
	return out, nil
}

// reach is pass 3, over what pass 1 loaded: it walks the tree of every
// stored, valid commit, complete commits first, and reports each needed
// object that is absent once. An object needed only by partial commits is
// FsckPartial. Trees shared between commits are walked once. stored is
// asked about objects that were not listed, which a concurrent
// transaction may have stored since.
func (g *fsckGraph) reach(partial map[ostree.Checksum]bool, stored func(ostree.ObjectName) (bool, error), rep *FsckReport) []FsckProblem {
	order := make([]ostree.Checksum, 0, len(g.commits))
	for c := range g.commits {
		order = append(order, c)
	}
	sort.Slice(order, func(i, j int) bool {
		if partial[order[i]] != partial[order[j]] {
			return !partial[order[i]]
		}
		return string(order[i][:]) < string(order[j][:])
	})
	var problems []FsckProblem
	visited := map[ostree.ObjectName]struct{}{}
	for _, c := range order {
		rep.Commits++
		kind := FsckMissing
		if partial[c] {
			rep.PartialCommits++
			kind = FsckPartial
		}
		need := func(n ostree.ObjectName, path string) bool {
			if _, seen := visited[n]; seen {
				return false
			}
			visited[n] = struct{}{}
			if g.has(n) {
				return true
			}
			if ok, err := stored(n); err != nil {
				problems = append(problems, FsckProblem{Kind: FsckUnreadable, Object: n, Commit: c, Path: path, Reason: err.Error()})
			} else if !ok {
				problems = append(problems, FsckProblem{Kind: kind, Object: n, Commit: c, Path: path})
			}
			return false
		}
		var dir func(tree, meta ostree.Checksum, path string)
		dir = func(tree, meta ostree.Checksum, path string) {
			need(ostree.ObjectName{Checksum: meta, Type: ostree.ObjectDirMeta}, path)
			if !need(ostree.ObjectName{Checksum: tree, Type: ostree.ObjectDirTree}, path) {
				return
			}
			t, ok := g.trees[tree]
			if !ok {
				return // present but corrupt: reported in pass 1
			}
			for _, f := range t.Files {
				need(ostree.ObjectName{Checksum: f.Checksum, Type: ostree.ObjectFile}, fsckPath(path, f.Name))
			}
			for _, d := range t.Dirs {
				dir(d.Tree, d.Meta, fsckPath(path, d.Name))
			}
		}
		cm := g.commits[c]
		dir(cm.RootTree, cm.RootMeta, "/")
	}
	return problems
}

func fsckPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// verifyCommits calls verify for every commit reachable from a ref: the
// ref's commit and its ancestors, as far as they are stored and valid.
func (r *Repo) verifyCommits(g *fsckGraph, refs []refEntry, verify func(ostree.Checksum, []byte, []byte) error, rep *FsckReport) {
	seen := map[ostree.Checksum]bool{}
	for _, ref := range refs {
		for c := ref.checksum; !c.IsZero() && !seen[c]; {
			seen[c] = true
			cm, ok := g.commits[c]
			if !ok {
				break // missing parent (history not pulled) or corrupt: reported already
			}
			n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}
			meta, err := r.ReadCommitMeta(c)
			if err == nil {
				err = verify(c, g.commitBytes[c], meta)
			}
			if err != nil {
				rep.Problems = append(rep.Problems, FsckProblem{Kind: FsckSignature, Object: n, Ref: ref.label, Reason: err.Error()})
			} else {
				rep.Verified++
			}
			c = cm.Parent
		}
	}
}
