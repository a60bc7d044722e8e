//go:build peer

package repo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// These tests drive the strata binary as an operator would: kill -9 a
// `strata repo commit` at several points, and run commits and a prune side
// by side. They carry the peer tag because every state they reach must
// also pass libostree's `ostree fsck`.

// buildStrata builds cmd/strata into a temporary directory.
func buildStrata(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "strata")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/strata")
	cmd.Dir = testutil.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/strata: %v\n%s", err, out)
	}
	return bin
}

// strata runs the binary to completion and returns its stdout; it fails
// the test on a non-zero exit.
func strata(t *testing.T, bin string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("strata %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

func parseChecksumLine(t *testing.T, out string) ostree.Checksum {
	t.Helper()
	c, err := ostree.ParseChecksum(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("commit printed %q, want a checksum", out)
	}
	return c
}

// checkAfterCrash asserts the invariants after a kill: ref old or new,
// both fscks clean.
func checkAfterCrash(t *testing.T, bin, repo string, old, new ostree.Checksum) ostree.Checksum {
	t.Helper()
	r := mustOpen(t, repo)
	ref, err := r.ReadRef("", "main")
	if err != nil || (ref != old && ref != new) {
		t.Fatalf("ref main = %s, %v; want the old commit %s or the new %s", ref, err, old, new)
	}
	strata(t, bin, "repo", "fsck", "--repo", repo)
	requireFsckClean(t, r)
	peerFsck(t, repo)
	return ref
}

// stagedFiles counts the files under the staging directories of tmp/.
func stagedFiles(repo string) (n int, biggest int64) {
	tmp := filepath.Join(repo, "tmp")
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "staging-") {
			continue
		}
		filepath.WalkDir(filepath.Join(tmp, e.Name()), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
				if info, err := d.Info(); err == nil && info.Size() > biggest {
					biggest = info.Size()
				}
			}
			return nil
		})
	}
	return n, biggest
}

func TestKilledCommitCLI(t *testing.T) {
	t.Parallel()
	bin := buildStrata(t)
	work := t.TempDir()
	tree0, tree := filepath.Join(work, "tree0"), filepath.Join(work, "tree")
	makeTestDir(t, tree0, 20, 0, 1)
	makeTestDir(t, tree, 3000, 200, 2)
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		t.Run(string(mode), func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "base")
			strata(t, bin, "repo", "init", "--repo", base, "--mode", string(mode))
			c0 := parseChecksumLine(t, strata(t, bin, "repo", "commit", "--repo", base, "--branch", "main", "--tree", tree0, "--timestamp", "1700000000", "--subject", "first"))
			commitArgs := func(repo string) []string {
				return []string{"repo", "commit", "--repo", repo, "--branch", "main", "--tree", tree, "--timestamp", "1700000100",
					"--subject", "big", "--parent", c0.String()}
			}
			copyRepo := func(name string) string {
				dst := filepath.Join(t.TempDir(), name)
				if out, err := exec.Command("cp", "-a", base, dst).CombinedOutput(); err != nil {
					t.Fatalf("cp -a: %v\n%s", err, out)
				}
				return dst
			}
			refRepo := copyRepo("reference")
			start := time.Now()
			want := parseChecksumLine(t, strata(t, bin, commitArgs(refRepo)...))
			took := time.Since(start)
			t.Logf("uninterrupted %s commit of %s: %v", mode, want, took)
			bigEntry, err := Lookup(mustOpen(t, refRepo), want, "/big.bin")
			if err != nil {
				t.Fatal(err)
			}
			big := ostree.ObjectName{Checksum: bigEntry.Checksum, Type: ostree.ObjectFile}

			points := []struct {
				name string
				when func(repo string) (ready <-chan time.Time, cond func() bool)
			}{
				{"staging directory appears", func(repo string) (<-chan time.Time, func() bool) {
					return nil, func() bool { return len(stagingDirs(t, repo)) > 0 }
				}},
				{"1000 objects staged", func(repo string) (<-chan time.Time, func() bool) {
					return nil, func() bool { n, _ := stagedFiles(repo); return n >= 1000 }
				}},
				{"big file half written", func(repo string) (<-chan time.Time, func() bool) {
					return nil, func() bool { _, b := stagedFiles(repo); return b >= 25<<20 }
				}},
				{"big file's object in objects", func(repo string) (<-chan time.Time, func() bool) {
					p := mustOpen(t, repo).ObjectPath(big)
					return nil, func() bool { _, err := os.Lstat(p); return err == nil }
				}},
				{"a third of the time", func(string) (<-chan time.Time, func() bool) { return time.After(took / 3), nil }},
				{"two thirds of the time", func(string) (<-chan time.Time, func() bool) { return time.After(2 * took / 3), nil }},
			}
			for _, pt := range points {
				t.Run(pt.name, func(t *testing.T) {
					repo := copyRepo("repo")
					cmd := exec.Command(bin, commitArgs(repo)...)
					var stderr bytes.Buffer
					cmd.Stderr = &stderr
					if err := cmd.Start(); err != nil {
						t.Fatal(err)
					}
					exited := make(chan error, 1)
					go func() { exited <- cmd.Wait() }()
					ready, cond := pt.when(repo)
					var exitErr error
					done := false
					if ready != nil {
						select {
						case <-ready:
						case exitErr = <-exited:
							done = true
						}
					} else {
						pollUntil(t, 5*time.Minute, pt.name, func() bool {
							select {
							case exitErr = <-exited:
								done = true
								return true
							default:
								return cond()
							}
						})
					}
					if !done {
						cmd.Process.Signal(syscall.SIGKILL)
						exitErr = <-exited
					}
					killed := false
					if ee, ok := exitErr.(*exec.ExitError); ok {
						ws, _ := ee.Sys().(syscall.WaitStatus)
						killed = ws.Signaled() && ws.Signal() == syscall.SIGKILL
					}
					if !killed && exitErr != nil {
						t.Fatalf("strata repo commit = %v\n%s", exitErr, stderr.String())
					}
					n, _ := stagedFiles(repo)
					t.Logf("killed at %q: killed=%v, %d files left in staging", pt.name, killed, n)
					checkAfterCrash(t, bin, repo, c0, want)

					got := parseChecksumLine(t, strata(t, bin, commitArgs(repo)...))
					if got != want {
						t.Fatalf("re-run of the commit = %s, want %s as uninterrupted", got, want)
					}
					if ref := checkAfterCrash(t, bin, repo, c0, want); ref != want {
						t.Fatalf("after the re-run ref main = %s, want %s", ref, want)
					}
					if left := stagingDirs(t, repo); len(left) != 0 {
						t.Errorf("after the re-run tmp/ still holds %v", left)
					}
				})
			}
		})
	}
}

// TestConcurrentCommitsAndPruneCLI runs two commits of different trees
// into one repository at once, then a commit with a prune beside it.
func TestConcurrentCommitsAndPruneCLI(t *testing.T) {
	t.Parallel()
	bin := buildStrata(t)
	work := t.TempDir()
	repo := filepath.Join(work, "repo")
	strata(t, bin, "repo", "init", "--repo", repo, "--mode", "archive")
	trees := map[string]string{}
	for i, name := range []string{"a", "b"} {
		trees[name] = filepath.Join(work, "tree-"+name)
		makeTestDir(t, trees[name], 1500, 8, uint64(10+i))
	}
	type result struct {
		branch string
		out    string
		err    error
		stderr string
	}
	start := func(results chan<- result, branch string, args ...string) {
		go func() {
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(bin, args...)
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			results <- result{branch, stdout.String(), err, stderr.String()}
		}()
	}
	commit := func(branch, tree string) []string {
		return []string{"repo", "commit", "--repo", repo, "--branch", branch, "--tree", tree, "--subject", branch}
	}

	results := make(chan result, 2)
	start(results, "a", commit("a", trees["a"])...)
	start(results, "b", commit("b", trees["b"])...)
	heads := map[string]ostree.Checksum{}
	for range 2 {
		res := <-results
		if res.err != nil {
			t.Fatalf("concurrent strata repo commit -b %s: %v\n%s", res.branch, res.err, res.stderr)
		}
		heads[res.branch] = parseChecksumLine(t, res.out)
	}
	r := mustOpen(t, repo)
	for b, c := range heads {
		if got, err := r.ReadRef("", b); err != nil || got != c {
			t.Errorf("ref %s = %s, %v; want %s", b, got, err, c)
		}
	}
	requireFsckClean(t, r)
	peerFsck(t, repo)

	// Change tree a and commit it again while a prune --depth 0 runs: the
	// prune waits for the commit's transaction (or the commit for the
	// prune), and the old a goes or stays, but nothing the new one uses.
	if err := os.WriteFile(filepath.Join(trees["a"], "new-in-a2"), []byte("a2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(trees["a"], "d00")); err != nil {
		t.Fatal(err)
	}
	results = make(chan result, 2)
	start(results, "a", commit("a", trees["a"])...)
	pollUntil(t, 5*time.Minute, "the commit's staging directory", func() bool {
		select {
		case res := <-results:
			results <- res // finished already: prune after it
			return true
		default:
			return len(stagingDirs(t, repo)) > 0
		}
	})
	start(results, "prune", "repo", "prune", "--repo", repo, "--depth", "0")
	for range 2 {
		res := <-results
		if res.err != nil {
			t.Fatalf("strata repo %s beside the other: %v\n%s", res.branch, res.err, res.stderr)
		}
		if res.branch == "a" {
			heads["a"] = parseChecksumLine(t, res.out)
		}
	}
	for b, c := range heads {
		if got, err := r.ReadRef("", b); err != nil || got != c {
			t.Errorf("ref %s = %s, %v; want %s", b, got, err, c)
		}
	}
	requireFsckClean(t, r)
	peerFsck(t, repo)
	// Whichever ran first, a prune now leaves exactly the two heads.
	st, err := Prune(context.Background(), r, PruneOptions{Depth: 0})
	if err != nil {
		t.Fatal(err)
	}
	if rep := requireFsckClean(t, r); rep.Commits != 2 {
		t.Errorf("after pruning to depth 0 there are %d commits (pruned %d), want a and b", rep.Commits, st.Commits)
	}
	strata(t, bin, "repo", "fsck", "--repo", repo)
}

// TestFsckPruneCLIOutput checks the commands' exit codes, text and JSON.
func TestFsckPruneCLIOutput(t *testing.T) {
	t.Parallel()
	bin := buildStrata(t)
	fx := newPruneFixture(t, ModeArchive)
	repo := fx.r.Path()
	run := func(args ...string) (string, int) {
		var out bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return out.String(), ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return out.String(), 0
	}

	if out, code := run("repo", "prune", "--repo", repo, "--depth", "-2"); code != 2 {
		t.Errorf("prune --depth -2 = exit %d, want 2 (usage)\n%s", code, out)
	}
	out, code := run("repo", "prune", "--repo", repo, "--depth", "0", "--dry-run", "--json")
	var dry struct {
		DryRun  bool `json:"dry_run"`
		Deleted int  `json:"deleted"`
		Objects []struct {
			Object, Type string
		} `json:"deleted_objects"`
	}
	if err := json.Unmarshal([]byte(out), &dry); code != 0 || err != nil || !dry.DryRun || dry.Deleted == 0 || len(dry.Objects) != dry.Deleted {
		t.Fatalf("prune --dry-run --json = exit %d, %v:\n%s", code, err, out)
	}
	out, code = run("repo", "prune", "--repo", repo, "--depth", "0")
	if code != 0 || !strings.Contains(out, fmt.Sprintf("Deleted %d objects (3 commits)", dry.Deleted)) {
		t.Errorf("prune --depth 0 = exit %d:\n%s\nwant %d objects deleted, as the dry run said", code, out, dry.Deleted)
	}

	if out, code := run("repo", "fsck", "--repo", repo); code != 0 || !strings.Contains(out, "No problems found") {
		t.Errorf("fsck of a clean repository = exit %d:\n%s", code, out)
	}
	bad := fx.c3.Objects["own/c3"]
	if err := os.Remove(fx.r.ObjectPath(bad)); err != nil {
		t.Fatal(err)
	}
	out, code = run("repo", "fsck", "--repo", repo)
	// Exit 4: stored data failed its checks (README "Exit codes").
	if code != 4 || !strings.Contains(out, "missing file object "+bad.Checksum.String()) || !strings.Contains(out, "cannot verify repository") {
		t.Errorf("fsck with %s deleted = exit %d:\n%s\nwant exit 4 naming the object", bad, code, out)
	}
	out, code = run("repo", "fsck", "--repo", repo, "--json")
	var rep struct {
		OK       bool `json:"ok"`
		Problems []struct {
			Kind, Object, Path string
		} `json:"problems"`
	}
	// The report comes first; the error object that --json adds on stderr follows it.
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&rep); code != 4 || err != nil || rep.OK {
		t.Fatalf("fsck --json = exit %d, %v:\n%s", code, err, out)
	}
	if len(rep.Problems) < 1 || rep.Problems[0].Kind != "missing" || rep.Problems[0].Object != bad.Checksum.String() || rep.Problems[0].Path != "/own/c3" {
		t.Errorf("fsck --json problems = %+v, want %s missing at /own/c3 first", rep.Problems, bad)
	}
}

// pollUntil calls cond until it returns true or the deadline passes. It
// yields the processor between calls without sleeping a fixed time: the
// tests wait for filesystem events of another process.
func pollUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		// A short nanosleep keeps the poller from starving the process
		// it watches on two cores; nothing is asserted on its duration.
		unix.Nanosleep(&unix.Timespec{Nsec: 200_000}, nil)
	}
}
