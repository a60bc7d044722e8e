//go:build root

package sysroot_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
)

// The step-hook crash matrix (issue 4, item 6): every operation that
// changes a sysroot is run once to record its steps, then, for every step
// k, from the same starting state, with a hook that stops it after step
// k, either as a power cut (an error wrapping sysroot.ErrCrash: nothing
// undone) or as a failure (a plain error: the operation undoes what it
// can). docs/crash-matrix.md says what is proven.

// errInjected is the plain failure of the "fail" variant.
var errInjected = errors.New("injected failure")

// hookCounts tallies the matrix for the summary line.
type hookCounts struct {
	mu       sync.Mutex
	ops      int
	steps    int
	outcomes map[string]int // crash outcome → cases
	fails    map[string]int // fail outcome → cases
}

func (c *hookCounts) add(m map[string]int, k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m[k]++
}

func TestCrashMatrixHook(t *testing.T) {
	testutil.RequireRoot(t)
	counts := &hookCounts{outcomes: map[string]int{}, fails: map[string]int{}}
	t.Run("ops", func(t *testing.T) {
		for _, op := range hookOps() {
			t.Run(op.name, func(t *testing.T) {
				t.Parallel()
				runHookOp(t, op, counts)
			})
		}
	})
	t.Logf("crash-matrix counts: %d operations, %d steps, %d crash cases (%s), %d fail cases (%s)",
		counts.ops, counts.steps, counts.steps, fmtCounts(counts.outcomes), counts.steps, fmtCounts(counts.fails))
}

func fmtCounts(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// openWithHook opens the sysroot at s with a step hook.
func openWithHook(t *testing.T, s string, hook func(string) error) *sysroot.Sysroot {
	t.Helper()
	sr, err := sysroot.Open(s, sysroot.WithStepHook(hook))
	if err != nil {
		t.Fatalf("Open(%s): %v", s, err)
	}
	return sr
}

func runHookOp(t *testing.T, op hookOp, counts *hookCounts) {
	ctx := context.Background()
	dir := tmpfsDir(t)
	tmpl := filepath.Join(dir, "template")
	if err := sysroot.Init(tmpl, "fakeos"); err != nil {
		t.Fatalf("Init: %v", err)
	}
	t.Cleanup(func() { sysroottest.ClearImmutable(tmpl) })
	sr, err := sysroot.Open(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	op.setup(crashFixture{t, ctx, tmpl, sr, fakeV})
	sr.Close()
	start := mustState(t, tmpl)
	startSnap, err := sysroottest.Snapshot(tmpl)
	if err != nil {
		t.Fatal(err)
	}
	startSnap = withoutLayoutDirs(startSnap)
	rerun := op.rerun
	if rerun == nil {
		rerun = op.run
	}

	// The uninterrupted run records the steps; once is its result, twice
	// the result of running it again.
	once := filepath.Join(dir, "once")
	sysroottest.CopySysroot(t, tmpl, once)
	var steps []string
	sr = openWithHook(t, once, func(step string) error { steps = append(steps, step); return nil })
	if err := op.run(ctx, sr); err != nil {
		t.Fatalf("%s uninterrupted: %v", op.name, err)
	}
	sr.Close()
	want1 := mustState(t, once)
	op.want(t, start, want1)
	if cmp.Equal(start, want1) {
		t.Fatalf("%s changes nothing", op.name)
	}
	mustClean(t, once, "after an uninterrupted "+op.name)
	twice := filepath.Join(dir, "twice")
	sysroottest.CopySysroot(t, once, twice)
	sr, err = sysroot.Open(twice)
	if err != nil {
		t.Fatal(err)
	}
	if err := rerun(ctx, sr); err != nil {
		t.Fatalf("%s run again: %v", op.name, err)
	}
	sr.Close()
	want2 := mustState(t, twice)
	if len(steps) == 0 {
		t.Fatalf("%s has no steps", op.name)
	}
	counts.mu.Lock()
	counts.ops++
	counts.steps += len(steps)
	counts.mu.Unlock()
	t.Logf("%s: %d steps: %s", op.name, len(steps), strings.Join(steps, " "))

	for k := 1; k <= len(steps); k++ {
		t.Run(fmt.Sprintf("%02d-%s", k, steps[k-1]), func(t *testing.T) {
			t.Parallel()
			c := hookCase{op: op, k: k, steps: steps, tmpl: tmpl, work: dir, start: start, startSnap: startSnap, want1: want1, want2: want2, rerun: rerun}
			var crashed, failed string
			t.Run("crash", func(t *testing.T) { crashed = c.crash(t) })
			t.Run("fail", func(t *testing.T) { failed = c.fail(t) })
			if crashed != "" {
				counts.add(counts.outcomes, crashed)
			}
			if failed != "" {
				counts.add(counts.fails, failed)
			}
			if crashed != "" && failed != "" && strings.TrimSuffix(crashed, "-unstaged") != strings.TrimSuffix(failed, "-unstaged") {
				t.Errorf("after step %d (%s): a crash leaves %s, a failure %s; want the same side of the commit point", k, steps[k-1], crashed, failed)
			}
		})
	}
}

// withoutLayoutDirs drops from a snapshot the directories of the sysroot
// layout that a first deploy creates and nothing removes, empty or not:
// ostree/deploy/OS/deploy, boot/ostree and the boot/boot -> . link. An
// undone deploy may leave them; they hold no state.
func withoutLayoutDirs(snap []string) []string {
	var out []string
	for _, l := range snap {
		p, _, _ := strings.Cut(l, " ")
		if p == "boot/ostree" || p == "boot/boot" || (strings.HasPrefix(p, "ostree/deploy/") && strings.Count(p, "/") == 3 && strings.HasSuffix(p, "/deploy")) {
			continue
		}
		out = append(out, l)
	}
	return out
}

// hookCase is one step of one operation.
type hookCase struct {
	op                  hookOp
	k                   int
	steps               []string
	tmpl, work          string // the template; where copies go
	start, want1, want2 crashState
	startSnap           []string
	rerun               func(context.Context, *sysroot.Sysroot) error
}

// interrupt runs the operation on a copy of the template with a hook
// that stops it after step k, as a crash (ErrCrash) or a failure
// (errInjected), and returns the copy.
func (c hookCase) interrupt(t *testing.T, crash bool) string {
	t.Helper()
	hookErr := errInjected
	if crash {
		hookErr = sysroot.ErrCrash
	}
	s := filepath.Join(c.work, fmt.Sprintf("%02d-crash-%v", c.k, crash))
	sysroottest.CopySysroot(t, c.tmpl, s)
	n := 0
	var at string
	sr := openWithHook(t, s, func(step string) error {
		n++
		if n == c.k {
			at = step
			return fmt.Errorf("power cut after %s: %w", step, hookErr)
		}
		return nil
	})
	err := c.op.run(context.Background(), sr)
	sr.Close()
	if at != c.steps[c.k-1] {
		t.Fatalf("step %d = %q, want %q (the steps of an uninterrupted run)", c.k, at, c.steps[c.k-1])
	}
	if !errors.Is(err, hookErr) {
		t.Fatalf("%s interrupted after step %d = %v, want an error wrapping %v", c.op.name, c.k, err, hookErr)
	}
	if !crash && errors.Is(err, sysroot.ErrCrash) {
		t.Fatalf("%s failed after step %d = %v, which reads as a crash", c.op.name, c.k, err)
	}
	return s
}

// crash: the disk as a power cut after step k leaves it.
func (c hookCase) crash(t *testing.T) string {
	ctx := context.Background()
	s := c.interrupt(t, true)
	// (a) old or new, complete; (c) it opens.
	got, err := readCrashState(s)
	if err != nil {
		t.Fatalf("after a crash: %v", err)
	}
	out := outcome(got, c.start, c.want1, c.op.discardsStaged)
	if out == "" {
		t.Fatalf("after a crash the state is neither old nor new:\n-old +got:\n%s\n-new +got:\n%s", cmp.Diff(c.start, got), cmp.Diff(c.want1, got))
	}
	// (b) the repository is sound.
	if err := fsckRepo(ctx, s); err != nil {
		t.Errorf("after a crash: %v", err)
	}
	// (c) the operation run again converges.
	sr, err := sysroot.Open(s)
	if err != nil {
		t.Fatalf("Open after a crash: %v", err)
	}
	defer sr.Close()
	if err := c.rerun(ctx, sr); err != nil {
		t.Fatalf("%s run again after a crash (%s): %v", c.op.name, out, err)
	}
	want := c.want1
	if out == "new" {
		want = c.want2
	}
	if diff := cmp.Diff(want, mustState(t, s)); diff != "" {
		t.Errorf("%s run again after a crash (%s) does not converge (-want +got):\n%s", c.op.name, out, diff)
	}
	// (d) a cleanup leaves nothing over, and the state as it was.
	if _, err := sr.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	mustClean(t, s, "after crash, re-run and cleanup")
	if diff := cmp.Diff(want, mustState(t, s)); diff != "" {
		t.Errorf("Cleanup after convergence changed the state (-want +got):\n%s", diff)
	}
	if err := fsckRepo(ctx, s); err != nil {
		t.Errorf("after convergence and cleanup: %v", err)
	}
	return out
}

// fail: a plain error after step k. Before the commit point the
// operation undoes its work: exactly the old sysroot; after it, the new
// state, and a cleanup leaves nothing over.
func (c hookCase) fail(t *testing.T) string {
	ctx := context.Background()
	s := c.interrupt(t, false)
	got, err := readCrashState(s)
	if err != nil {
		t.Fatalf("after a failure: %v", err)
	}
	out := outcome(got, c.start, c.want1, c.op.discardsStaged)
	switch out {
	case "old":
		snap, err := sysroottest.Snapshot(s)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.startSnap, withoutLayoutDirs(snap)); diff != "" {
			t.Errorf("a failure before the commit point left changes (-before +after):\n%s", diff)
		}
	case "":
		t.Fatalf("after a failure the state is neither old nor new:\n-old +got:\n%s\n-new +got:\n%s", cmp.Diff(c.start, got), cmp.Diff(c.want1, got))
	}
	if err := fsckRepo(ctx, s); err != nil {
		t.Errorf("after a failure: %v", err)
	}
	sr, err := sysroot.Open(s)
	if err != nil {
		t.Fatalf("Open after a failure: %v", err)
	}
	defer sr.Close()
	if _, err := sr.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup after a failure: %v", err)
	}
	mustClean(t, s, "after a failure and cleanup")
	return out
}
