//go:build peer && root

package interop

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
)

// modes are the four repository modes both tools write.
var modes = []string{"archive", "bare", "bare-user", "bare-user-only"}

// commitSpec is one commit, expressed once and translated to both command lines.
type commitSpec struct {
	name      string // what the commit exercises, for messages
	branch    string
	tree      func() (string, error)
	subject   string
	body      string
	timestamp int64
	metadata  []string // K=V, in order
	parent    string   // "" = the branch head; "none"; or an index into the earlier commits as "#N"
}

// history is the sequence of commits made in each repository pair: the awkward tree with body and
// two string metadata entries (one value containing '='), a small tree on top (implicit parent, no
// body), the small tree again with an explicit "none" parent, and the small tree on another
// branch with the first commit as its explicit parent.
var history = []commitSpec{
	{name: "awkward tree", branch: "main", tree: awkwardTree, subject: "Awkward tree", body: "Every case.\n\nSecond paragraph.",
		timestamp: 1672531200, metadata: []string{"version=1.0", "interop.note=a=b c"}},
	{name: "implicit parent", branch: "main", tree: smallTree, subject: "Second", timestamp: 1672617600,
		metadata: []string{"version=2.0"}},
	{name: "parent none", branch: "main", tree: smallTree, subject: "Third", timestamp: 1672704000, parent: "none"},
	{name: "explicit parent", branch: "other/branch", tree: smallTree, subject: "Fourth", timestamp: 1672790400, parent: "#0"},
}

func (c commitSpec) parentRev(done []string) (string, error) {
	if len(c.parent) > 0 && c.parent[0] == '#' {
		i, err := strconv.Atoi(c.parent[1:])
		if err != nil || i >= len(done) {
			return "", fmt.Errorf("internal error: commit %q has parent %q", c.name, c.parent)
		}
		return done[i], nil
	}
	return c.parent, nil
}

func (c commitSpec) strataArgs(repo, tree, parent string) []string {
	args := []string{"repo", "commit", "--repo", repo, "--branch", c.branch, "--tree", tree,
		"--subject", c.subject, "--timestamp", strconv.FormatInt(c.timestamp, 10)}
	if c.body != "" {
		args = append(args, "--body", c.body)
	}
	for _, m := range c.metadata {
		args = append(args, "--metadata", m)
	}
	if parent != "" {
		args = append(args, "--parent", parent)
	}
	return args
}

func (c commitSpec) ostreeArgs(repo, tree, parent string) []string {
	args := []string{"--repo=" + repo, "commit", "-b", c.branch, "--tree=dir=" + tree,
		"-s", c.subject, "--timestamp=@" + strconv.FormatInt(c.timestamp, 10)}
	if c.body != "" {
		args = append(args, "-m", c.body)
	}
	for _, m := range c.metadata {
		args = append(args, "--add-metadata-string="+m)
	}
	if parent != "" {
		args = append(args, "--parent="+parent)
	}
	return args
}

// repoPair is one repository of a mode written by strata and one written by ostree from the same
// inputs, and the commits each printed, in history order. Tests must not modify them: copy first.
type repoPair struct {
	mode           string
	strata, ostree string
	strataCommits  []string
	ostreeCommits  []string
	// errs has, per history entry, why that commit could not be made by one of the tools (the
	// later entries are then not attempted).
	errs []error
}

// makePair initializes both repositories and replays history into each; a failing commit stops
// that tool's history, recording the error.
func makePair(mode string) (*repoPair, error) {
	dir := filepath.Join(scratch, "repos", mode)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	p := &repoPair{mode: mode, strata: filepath.Join(dir, "strata"), ostree: filepath.Join(dir, "ostree")}
	if err := initRepo("strata", p.strata, mode); err != nil {
		return nil, err
	}
	if err := initRepo("ostree", p.ostree, mode); err != nil {
		return nil, err
	}
	p.errs = make([]error, len(history))
	for i, c := range history {
		tree, err := c.tree()
		if err != nil {
			return nil, err
		}
		if len(p.strataCommits) == i {
			if sum, err := commitWith(strataOK, c, c.strataArgs, p.strata, tree, p.strataCommits); err != nil {
				p.errs[i] = err
			} else {
				p.strataCommits = append(p.strataCommits, sum)
			}
		} else {
			p.errs[i] = fmt.Errorf("strata: not attempted, an earlier commit failed")
		}
		if len(p.ostreeCommits) == i {
			if sum, err := commitWith(ostreeOK, c, c.ostreeArgs, p.ostree, tree, p.ostreeCommits); err != nil {
				p.errs[i] = errors.Join(p.errs[i], fmt.Errorf("peer: %w", err))
			} else {
				p.ostreeCommits = append(p.ostreeCommits, sum)
			}
		} else {
			p.errs[i] = errors.Join(p.errs[i], fmt.Errorf("ostree: not attempted, an earlier commit failed"))
		}
	}
	return p, nil
}

func commitWith(runner func(...string) (string, error), c commitSpec, argv func(repo, tree, parent string) []string,
	repo, tree string, done []string) (string, error) {
	parent, err := c.parentRev(done)
	if err != nil {
		return "", err
	}
	out, err := runner(argv(repo, tree, parent)...)
	if err != nil {
		return "", fmt.Errorf("commit %q: %w", c.name, err)
	}
	return checksumOut(out)
}

var pairs = func() map[string]func() (*repoPair, error) {
	m := map[string]func() (*repoPair, error){}
	for _, mode := range modes {
		m[mode] = sync.OnceValues(func() (*repoPair, error) { return makePair(mode) })
	}
	return m
}()

// pairFor returns the shared repository pair of mode, failing the test if it could not be built.
func pairFor(t *testing.T, mode string) *repoPair {
	t.Helper()
	p, err := pairs[mode]()
	if err != nil {
		t.Fatalf("preparing %s repositories: %v", mode, err)
	}
	return p
}

// strataCommit returns the i-th history commit strata made, failing the test if it could not.
func (p *repoPair) strataCommit(t *testing.T, i int) string {
	t.Helper()
	if i >= len(p.strataCommits) {
		t.Fatalf("strata could not commit %q to its %s repository: %v", history[i].name, p.mode, p.errs[i])
	}
	return p.strataCommits[i]
}

// ostreeCommit returns the i-th history commit ostree made, failing the test if it could not.
func (p *repoPair) ostreeCommit(t *testing.T, i int) string {
	t.Helper()
	if i >= len(p.ostreeCommits) {
		t.Fatalf("ostree could not commit %q to its %s repository: %v", history[i].name, p.mode, p.errs[i])
	}
	return p.ostreeCommits[i]
}
