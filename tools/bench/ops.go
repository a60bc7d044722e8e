package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// fixture is the state of one tool on one corpus in one repository mode. Its repository and
// checkout live under dir, on one filesystem, so a bare-user checkout can hardlink.
type fixture struct {
	cli  cli
	mode string
	tree string // the corpus directory to commit
	dir  string // scratch directory of this tool, corpus and mode
	// unavailable, when set, fails every op of this tool without running it (e.g. no binary).
	unavailable error
	// committed records that repo holds branch benchBranch with the corpus committed.
	committed bool
}

func (f *fixture) repo() string     { return filepath.Join(f.dir, "repo") }
func (f *fixture) checkout() string { return filepath.Join(f.dir, "checkout") }

// op is one benchmarked operation. For each measured run the harness calls prepare (not
// measured; its cleanup, if any, runs after the run), drops the page cache, runs argv under
// measurement, then asks result for a value that both tools must agree on.
//
// Ops run in list order on one fixture, so an op may rely on the state the previous ones left;
// ops that need a commit call f.ensureCommitted so that each can also run alone (-ops fsck).
// A pull op, for instance, would start `repo serve`/an HTTP server over f.repo() in prepare,
// return its shutdown as the cleanup, and pull into a fresh repository under f.dir.
type op struct {
	name string
	desc string
	// prepare readies f for one measured run; cleanup may be nil.
	prepare func(ctx context.Context, f *fixture) (cleanup func(), err error)
	// argv is the measured command line.
	argv func(f *fixture) []string
	// result derives the comparable result of a run ("" when the op has none).
	result func(f *fixture, stdout string) (string, error)
	// resultVaries says that runs legitimately differ in result (each recommit has a new parent).
	resultVaries bool
	// done records the effect of a successful run on f.
	done func(f *fixture)
	// transferred, if set, returns the bytes the run moved over the network (before cleanup).
	transferred func(f *fixture) int64
	// sysroot marks an op on a sysroot (sysroot.go): it runs once per corpus, not per mode.
	sysroot bool
}

// ops is every operation, in run order; -ops selects a subset.
var ops = []op{
	{
		name: "commit",
		desc: "cold commit into a fresh repository (repo init is unmeasured setup)",
		prepare: func(ctx context.Context, f *fixture) (func(), error) {
			return nil, f.freshRepo(ctx)
		},
		argv:   func(f *fixture) []string { return f.cli.commit(f.repo(), benchBranch, f.tree) },
		result: func(_ *fixture, stdout string) (string, error) { return parseChecksum(stdout) },
		done:   func(f *fixture) { f.committed = true },
	},
	{
		name:    "recommit",
		desc:    "commit the unchanged tree again (warm: every object exists; a new commit on top)",
		prepare: func(ctx context.Context, f *fixture) (func(), error) { return nil, f.ensureCommitted(ctx) },
		argv:    func(f *fixture) []string { return f.cli.commit(f.repo(), benchBranch, f.tree) },
		result:  func(_ *fixture, stdout string) (string, error) { return parseChecksum(stdout) },
		// Each run adds a commit on top of the previous one; both tools' chains must still match.
		resultVaries: true,
	},
	{
		name: "checkout",
		desc: "check out the branch into a new directory beside the repository",
		prepare: func(ctx context.Context, f *fixture) (func(), error) {
			if err := f.ensureCommitted(ctx); err != nil {
				return nil, err
			}
			return nil, removeAll(f.checkout())
		},
		argv:   func(f *fixture) []string { return f.cli.checkout(f.repo(), f.mode, benchBranch, f.checkout()) },
		result: func(f *fixture, _ string) (string, error) { return countEntries(f.checkout()) },
	},
	{
		name:    "fsck",
		desc:    "verify every object of the repository",
		prepare: func(ctx context.Context, f *fixture) (func(), error) { return nil, f.ensureCommitted(ctx) },
		argv:    func(f *fixture) []string { return f.cli.fsck(f.repo()) },
	},
}

// selectOps returns the ops named in the comma-separated list, in run order.
func selectOps(list string) ([]op, error) {
	if list == "" || list == "all" {
		return ops, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(list, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var sel []op
	for _, o := range ops {
		if want[o.name] {
			sel = append(sel, o)
			delete(want, o.name)
		}
	}
	if len(want) > 0 {
		var names []string
		for _, o := range ops {
			names = append(names, o.name)
		}
		for n := range want {
			return nil, fmt.Errorf("unknown op %q (have %s)", n, strings.Join(names, ", "))
		}
	}
	return sel, nil
}

// freshRepo removes everything of f and initializes an empty repository.
func (f *fixture) freshRepo(ctx context.Context) error {
	f.committed = false
	if err := removeAll(f.dir); err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return err
	}
	_, err := execute(ctx, f.dir, f.cli.initRepo(f.repo(), f.mode))
	return err
}

// ensureCommitted makes f hold a repository with the corpus committed, unmeasured.
func (f *fixture) ensureCommitted(ctx context.Context) error {
	if f.committed {
		return nil
	}
	if err := f.freshRepo(ctx); err != nil {
		return err
	}
	r, err := execute(ctx, f.dir, f.cli.commit(f.repo(), benchBranch, f.tree))
	if err != nil {
		return err
	}
	if _, err := parseChecksum(r.stdout); err != nil {
		return err
	}
	f.committed = true
	return nil
}

var checksumRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// parseChecksum returns the commit checksum a commit command printed: its last non-empty
// output line, which must be 64 lowercase hex characters.
func parseChecksum(stdout string) (string, error) {
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	last := strings.TrimSpace(lines[len(lines)-1])
	if !checksumRE.MatchString(last) {
		return "", fmt.Errorf("commit printed %q, want a 64-hex-character checksum", abbrev(last, 80))
	}
	return last, nil
}

// countEntries counts the entries below dir, as the checkout's comparable result.
func countEntries(dir string) (string, error) {
	n := 0
	err := filepath.WalkDir(dir, func(_ string, _ fs.DirEntry, err error) error {
		n++
		return err
	})
	if err != nil {
		return "", fmt.Errorf("counting checkout entries: %w", err)
	}
	return fmt.Sprintf("%d entries", n-1), nil
}

// removeAll removes path, first making directories writable: checkouts may hold read-only dirs.
func removeAll(path string) error {
	err := os.RemoveAll(path)
	if err == nil || !errors.Is(err, fs.ErrPermission) {
		return err
	}
	_ = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o755)
		}
		return nil
	})
	return os.RemoveAll(path)
}

func abbrev(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
