package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// The crash matrix kills a committing process at every observable step of
// a transaction, for real: a helper process (this test binary, re-run as
// TestCrashHelperProcess) commits a directory through Txn and sends itself
// SIGKILL at the step named by STRATA_CRASH_AT, either while staging
// content ("stage:K", after K objects) or at a step of Txn.Commit
// ("STEP:K", the K-th time Repo.onCommitStep sees STEP). After each crash:
// the ref is the old commit (or the new one, once written), Fsck and
// `ostree fsck` (peer tier) find nothing wrong, and a re-run of the same
// commit converges to the checksum of an uninterrupted run.

const crashHelperEnv = "STRATA_CRASH_HELPER"

// TestCrashHelperProcess is the helper process; it does nothing in a
// normal test run.
func TestCrashHelperProcess(t *testing.T) {
	if os.Getenv(crashHelperEnv) != "1" {
		return
	}
	if err := crashHelper(); err != nil {
		fmt.Fprintln(os.Stderr, "crash helper:", err)
		os.Exit(3)
	}
	os.Exit(0)
}

func crashHelper() error {
	r, err := Open(os.Getenv("STRATA_CRASH_REPO"))
	if err != nil {
		return err
	}
	parent, err := ostree.ParseChecksum(os.Getenv("STRATA_CRASH_PARENT"))
	if err != nil {
		return err
	}
	killAt, killCount := "", 0
	if at := os.Getenv("STRATA_CRASH_AT"); at != "" {
		step, k, _ := strings.Cut(at, ":")
		killAt = step
		if killCount, err = strconv.Atoi(k); err != nil {
			return fmt.Errorf("STRATA_CRASH_AT %q: %w", at, err)
		}
	}
	seen := map[string]int{}
	hit := func(step string) {
		seen[step]++
		if step == killAt && seen[step] == killCount {
			unix.Kill(os.Getpid(), unix.SIGKILL)
			select {} // SIGKILL cannot be caught; never go on
		}
	}
	r.onCommitStep = hit
	c, err := commitTestDir(context.Background(), r, os.Getenv("STRATA_CRASH_TREE"), "main", parent, 1700000100,
		func(int) { hit("stage") })
	if err != nil {
		return err
	}
	fmt.Printf("%s %d\n", c, seen["moved-object"])
	return nil
}

// crashRun runs the helper: commit tree onto repo's main with parent,
// killing itself at at ("" for never). It returns the commit and the
// number of objects moved, or killed == true.
func crashRun(t *testing.T, repo, tree string, parent ostree.Checksum, at string) (c ostree.Checksum, moved int, killed bool) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashHelperEnv+"=1", "STRATA_CRASH_REPO="+repo, "STRATA_CRASH_TREE="+tree,
		"STRATA_CRASH_PARENT="+parent.String(), "STRATA_CRASH_AT="+at)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			return c, 0, true
		}
	}
	if err != nil {
		t.Fatalf("helper commit (crash at %q): %v\n%s", at, err, stderr.String())
	}
	fields := strings.Fields(stdout.String())
	if len(fields) < 2 {
		t.Fatalf("helper commit printed %q, want CHECKSUM MOVED", stdout.String())
	}
	if c, err = ostree.ParseChecksum(fields[0]); err != nil {
		t.Fatal(err)
	}
	moved, _ = strconv.Atoi(fields[1])
	return c, moved, false
}

// crashBase makes a repository whose main holds a small first commit and
// returns it with that commit.
func crashBase(t *testing.T, mode Mode) (string, ostree.Checksum) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "repo")
	r, err := Init(path, mode)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c0 := mustWriteTestTree(t, r, "main", ostree.Checksum{}, nil, map[string]string{"README": "first\n", "d01/old": "old\n"})
	return path, c0.Commit
}

func stagingDirs(t *testing.T, repo string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(repo, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "staging-") {
			out = append(out, e.Name())
		}
	}
	return out
}

func TestCrashMatrix(t *testing.T) {
	t.Parallel()
	tree := filepath.Join(t.TempDir(), "tree")
	const files = 300
	makeTestDir(t, tree, files, 2, 42)
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			refRepo, c0 := crashBase(t, mode)
			want, moved, killed := crashRun(t, refRepo, tree, c0, "")
			if killed || moved < 10 {
				t.Fatalf("uninterrupted helper commit: killed %v, %d objects moved", killed, moved)
			}
			steps := []struct {
				name, at string
				newRef   bool
			}{
				{"staging the first object", "stage:1", false},
				{"staging half the objects", fmt.Sprintf("stage:%d", files/2), false},
				{"all staged, before syncfs", "staged:1", false},
				{"after syncfs", "synced:1", false},
				{"first object moved into objects", "moved-object:1", false},
				{"a quarter moved", fmt.Sprintf("moved-object:%d", moved/4), false},
				{"half moved", fmt.Sprintf("moved-object:%d", moved/2), false},
				{"all moved but the commit", fmt.Sprintf("moved-object:%d", moved-1), false},
				{"all moved, before the ref write", "objects-visible:1", false},
				{"after the ref write", "refs-written:1", true},
			}
			for _, step := range steps {
				t.Run(step.name, func(t *testing.T) {
					t.Parallel()
					repo, c0 := crashBase(t, mode)
					if _, _, killed := crashRun(t, repo, tree, c0, step.at); !killed {
						t.Fatalf("helper commit was not killed at %s", step.at)
					}
					r, err := Open(repo)
					if err != nil {
						t.Fatal(err)
					}
					defer r.Close()
					wantRef := c0
					if step.newRef {
						wantRef = want
					}
					if got, err := r.ReadRef("", "main"); err != nil || got != wantRef {
						t.Fatalf("after a crash at %s, ref main = %s, %v; want %s", step.at, got, err, wantRef)
					}
					requireFsckClean(t, r)
					peerFsck(t, repo)

					got, _, killed := crashRun(t, repo, tree, c0, "")
					if killed || got != want {
						t.Fatalf("re-run after a crash at %s = %s (killed %v), want %s as uninterrupted", step.at, got, killed, want)
					}
					if ref, err := r.ReadRef("", "main"); err != nil || ref != want {
						t.Fatalf("after the re-run, ref main = %s, %v; want %s", ref, err, want)
					}
					rep := requireFsckClean(t, r)
					peerFsck(t, repo)
					if left := stagingDirs(t, repo); len(left) != 0 {
						t.Errorf("after the re-run, tmp/ still holds %v", left)
					}
					refRep := requireFsckClean(t, mustOpen(t, refRepo))
					if rep.Objects != refRep.Objects {
						t.Errorf("after the re-run the repository has %d objects, an uninterrupted commit %d", rep.Objects, refRep.Objects)
					}
				})
			}
		})
	}
}

// TestCrashThenPrune: a prune between the crash and the re-run (even one
// that empties tmp/, as after a reboot) keeps the repository clean, and
// the re-run still converges.
func TestCrashThenPrune(t *testing.T) {
	t.Parallel()
	tree := filepath.Join(t.TempDir(), "tree")
	makeTestDir(t, tree, 200, 1, 7)
	refRepo, c0 := crashBase(t, ModeArchive)
	want, moved, _ := crashRun(t, refRepo, tree, c0, "")
	for _, at := range []string{"stage:100", fmt.Sprintf("moved-object:%d", moved/2), "objects-visible:1"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			repo, c0 := crashBase(t, ModeArchive)
			if _, _, killed := crashRun(t, repo, tree, c0, at); !killed {
				t.Fatalf("helper commit was not killed at %s", at)
			}
			r := mustOpen(t, repo)
			// Age the staging directory past core.tmp-expiry-secs.
			if err := r.SetConfig(withTmpExpiry(t, r, 0)); err != nil {
				t.Fatal(err)
			}
			st, err := Prune(context.Background(), r, PruneOptions{Depth: KeepAllHistory})
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Tmp) == 0 {
				t.Errorf("Prune() after a crash at %s removed nothing from tmp/", at)
			}
			requireFsckClean(t, r)
			peerFsck(t, repo)
			if got, _, _ := crashRun(t, repo, tree, c0, ""); got != want {
				t.Fatalf("re-run after crash and prune = %s, want %s", got, want)
			}
			requireFsckClean(t, r)
		})
	}
}

func mustOpen(t *testing.T, path string) *Repo {
	t.Helper()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func withTmpExpiry(t *testing.T, r *Repo, secs int) *keyfile.File {
	t.Helper()
	cfg := r.Config()
	cfg.Set("core", "tmp-expiry-secs", strconv.Itoa(secs))
	return cfg
}

// TestCrashLeftoverRefTemp: a process killed inside an atomic ref write
// leaves refs/heads/.NAME.tmp-*; listing refs, fsck and prune ignore it,
// as libostree does.
func TestCrashLeftoverRefTemp(t *testing.T) {
	t.Parallel()
	repo, c0 := crashBase(t, ModeBareUser)
	r := mustOpen(t, repo)
	for _, p := range []string{"refs/heads/.main.tmp-4242", "refs/heads/os/.stable.tmp-1", "refs/remotes/origin/.x.tmp-7"} {
		if err := os.MkdirAll(filepath.Join(repo, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(repo, p), []byte(c0.String()[:10]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	refs, err := r.ListRefs()
	if err != nil || len(refs) != 1 || refs[0].Name != "main" {
		t.Fatalf("ListRefs() = %v, %v; want only main", refs, err)
	}
	if rep := requireFsckClean(t, r); rep.Refs != 1 {
		t.Errorf("Fsck() checked %d refs, want 1", rep.Refs)
	}
	if _, err := Prune(context.Background(), r, PruneOptions{Depth: KeepAllHistory}); err != nil {
		t.Errorf("Prune() = %v", err)
	}
	peerFsck(t, repo)
}

// TestCrashFirstCommit: killed while making the first commit of a
// branch, the ref stays absent.
func TestCrashFirstCommit(t *testing.T) {
	t.Parallel()
	tree := filepath.Join(t.TempDir(), "tree")
	makeTestDir(t, tree, 100, 1, 3)
	for _, at := range []string{"stage:50", "moved-object:40", "objects-visible:1"} {
		t.Run(at, func(t *testing.T) {
			t.Parallel()
			repo := filepath.Join(t.TempDir(), "repo")
			r, err := Init(repo, ModeBareUserOnly)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			if _, _, killed := crashRun(t, repo, tree, ostree.Checksum{}, at); !killed {
				t.Fatalf("helper commit was not killed at %s", at)
			}
			r = mustOpen(t, repo)
			if c, err := r.ReadRef("", "main"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Fatalf("after a crash at %s, ref main = %s, %v; want no ref", at, c, err)
			}
			requireFsckClean(t, r)
			peerFsck(t, repo)
			c, _, _ := crashRun(t, repo, tree, ostree.Checksum{}, "")
			if got, err := r.ReadRef("", "main"); err != nil || got != c {
				t.Fatalf("after the re-run ref main = %s, %v; want %s", got, err, c)
			}
			requireFsckClean(t, r)
		})
	}
}
