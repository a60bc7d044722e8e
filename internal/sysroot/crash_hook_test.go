//go:build root

package sysroot_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/ostree"
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

// crashFixture builds starting states.
type crashFixture struct {
	t    *testing.T
	ctx  context.Context
	s    string
	sr   *sysroot.Sysroot
	fake func(n int) sysroottest.FakeOS // version n of the fake OS
}

func (f crashFixture) commit(o sysroottest.FakeOS) ostree.Checksum {
	f.t.Helper()
	return o.Commit(f.t, f.sr.Repo(), "fakeos/stable")
}

// commitV commits version n of the fixture's fake OS to fakeos/stable.
func (f crashFixture) commitV(n int) ostree.Checksum {
	f.t.Helper()
	return f.commit(f.fake(n))
}

func (f crashFixture) deploy(opts sysroot.DeployOptions) sysroot.Deployment {
	f.t.Helper()
	d, err := f.sr.Deploy(f.ctx, "fakeos", "fakeos/stable", opts)
	if err != nil {
		f.t.Fatalf("Deploy: %v", err)
	}
	return d
}

// write writes a file of the sysroot (parents created).
func (f crashFixture) write(rel, content string) {
	f.t.Helper()
	p := filepath.Join(f.s, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f crashFixture) remove(rel string) {
	f.t.Helper()
	if err := os.Remove(filepath.Join(f.s, rel)); err != nil {
		f.t.Fatal(err)
	}
}

func (f crashFixture) must(err error) {
	f.t.Helper()
	if err != nil {
		f.t.Fatal(err)
	}
}

// The fake OS versions: each has its own kernel (so a switch writes a
// new boot version and a boot directory) and its own /etc defaults.
func fakeV(n int) sysroottest.FakeOS {
	return sysroottest.FakeOS{
		Version:   fmt.Sprint(n),
		Kernel:    fmt.Sprintf("kernel %d\n", n),
		Initramfs: fmt.Sprintf("initramfs %d\n", n),
		Etc: map[string]string{
			"hostname":      fmt.Sprintf("v%d\n", n),
			"conf.d/a.conf": fmt.Sprintf("a%d\n", n),
			"new.conf":      fmt.Sprintf("n%d\n", n),
		},
	}
}

// v1Local: v1 deployed with kargs, then local /etc changes that every
// later deployment must carry: a modified, an added and a deleted file.
func v1Local(f crashFixture) sysroot.Deployment {
	f.commitV(1)
	d := f.deploy(sysroot.DeployOptions{Kargs: []string{"rw", "quiet"}})
	f.write(d.Path()+"/etc/hostname", "myhost\n")
	f.write(d.Path()+"/etc/local.conf", "mine\n")
	f.remove(d.Path() + "/etc/conf.d/a.conf")
	return d
}

// v2v1: [v2, v1] with v1's local changes merged into v2.
func v2v1(f crashFixture) {
	v1Local(f)
	f.commitV(2)
	f.deploy(sysroot.DeployOptions{})
}

// v1Next: v1 with local changes deployed, v2 committed.
func v1Next(f crashFixture) { v1Local(f); f.commitV(2) }

// toClean: [v3, v2, v1] with v1 no longer pinned, an orphan deployment
// directory and an unused boot directory: what Cleanup removes (with
// v1's objects).
func toClean(f crashFixture) {
	v2v1(f)
	_, err := f.sr.SetPinned(f.ctx, 1, true)
	f.must(err)
	f.commitV(3)
	f.deploy(sysroot.DeployOptions{})
	_, err = f.sr.SetPinned(f.ctx, 2, false)
	f.must(err)
	d := f.sr.Deployments()[2]
	f.write(fmt.Sprintf("ostree/deploy/fakeos/deploy/%s.7/usr/x", d.Checksum), "orphan\n")
	f.write("boot/ostree/fakeos-"+strings.Repeat("0", 64)+"/vmlinuz-x", "stale\n")
}

// stagedV2: v1 (local changes) deployed, v2 staged, then an /etc edit
// of v1 made after staging (Finalize must carry it).
func stagedV2(f crashFixture) {
	d := v1Local(f)
	f.commitV(2)
	f.deploy(sysroot.DeployOptions{Stage: true})
	f.write(d.Path()+"/etc/late.conf", "late\n")
}

// localEtc is what /etc of a deployment made from version n over v1Local
// holds.
func localEtc(n int, late bool) map[string]string {
	m := map[string]string{"hostname": "myhost\n", "local.conf": "mine\n", "new.conf": fmt.Sprintf("n%d\n", n), "conf.d": "dir -rwxr-xr-x"}
	if late {
		m["late.conf"] = "late\n"
	}
	return m
}

// hookOp is one operation of the matrix.
type hookOp struct {
	name  string
	setup func(f crashFixture)
	run   func(ctx context.Context, sr *sysroot.Sysroot) error
	// rerun is what recovery runs again (nil: run).
	rerun func(ctx context.Context, sr *sysroot.Sysroot) error
	// discardsStaged: an interruption before the commit point leaves
	// the old default and drops the staged deployment (Finalize removes
	// the staged record first, as libostree does).
	discardsStaged bool
	// want checks the uninterrupted run's result.
	want func(t *testing.T, start, end crashState)
}

func deployRun(opts sysroot.DeployOptions) func(context.Context, *sysroot.Sysroot) error {
	return func(ctx context.Context, sr *sysroot.Sysroot) error {
		_, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", opts)
		return err
	}
}

func finalizeRun(ctx context.Context, sr *sysroot.Sysroot) error {
	_, _, err := sr.Finalize(ctx)
	return err
}

// wantEtc checks the etc tree of the deployment at index i of st.
func wantEtc(t *testing.T, st crashState, i int, want map[string]string) {
	t.Helper()
	if i >= len(st.Deployments) {
		t.Fatalf("state has %d deployments, want one at %d", len(st.Deployments), i)
	}
	if diff := cmp.Diff(want, st.Deployments[i].Etc); diff != "" {
		t.Errorf("etc of %s (index %d) mismatch (-want +got):\n%s", st.Deployments[i].Name, i, diff)
	}
}

func hookOps() []hookOp {
	return []hookOp{
		{
			name:  "deploy-first",
			setup: func(f crashFixture) { f.commitV(1) },
			run:   deployRun(sysroot.DeployOptions{Kargs: []string{"rw"}}),
			want: func(t *testing.T, start, end crashState) {
				if len(start.Deployments) != 0 || len(end.Deployments) != 1 || end.View.Title != "Fake OS 1 (ostree:0)" {
					t.Errorf("deploy-first: %d deployments → %d, boots %q", len(start.Deployments), len(end.Deployments), end.View.Title)
				}
			},
		},
		{
			name:  "deploy-merge",
			setup: v1Next,
			run:   deployRun(sysroot.DeployOptions{}),
			want: func(t *testing.T, start, end crashState) {
				wantEtc(t, end, 0, localEtc(2, false))
				wantEtc(t, end, 1, start.Deployments[0].Etc)
				if end.Deployments[0].Kargs != "rw quiet" {
					t.Errorf("kargs of the new deployment = %q, want the merge deployment's", end.Deployments[0].Kargs)
				}
			},
		},
		{
			name:  "stage",
			setup: v1Next,
			run:   deployRun(sysroot.DeployOptions{Stage: true}),
			want: func(t *testing.T, start, end crashState) {
				if len(end.Deployments) != 2 || !end.Deployments[0].Staged || end.View != start.View {
					t.Errorf("stage: %+v, want a staged deployment and the same boot", end.Deployments)
				}
			},
		},
		{
			name:  "finalize",
			setup: stagedV2,
			run:   finalizeRun,
			rerun: func(ctx context.Context, sr *sysroot.Sysroot) error {
				if _, ok := sr.Staged(); !ok && sr.Deployments()[0].Version == "1" {
					if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Stage: true}); err != nil {
						return err
					}
				}
				return finalizeRun(ctx, sr)
			},
			discardsStaged: true,
			want: func(t *testing.T, start, end crashState) {
				wantEtc(t, end, 0, localEtc(2, true))
				if end.View.Title != "Fake OS 2 (ostree:0)" {
					t.Errorf("finalize: boots %q, want version 2", end.View.Title)
				}
			},
		},
		{
			name:  "upgrade",
			setup: v1Next,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Upgrade(ctx, nil, sysroot.UpgradeOptions{})
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				wantEtc(t, end, 0, localEtc(2, false))
				if end.Deployments[0].Refspec != "fakeos/stable" {
					t.Errorf("upgrade: refspec %q", end.Deployments[0].Refspec)
				}
			},
		},
		{
			name:  "rollback",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Rollback(ctx)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if end.View.Title != "Fake OS 1 (ostree:0)" || end.Deployments[1].Name != start.Deployments[0].Name {
					t.Errorf("rollback: boots %q, list %+v", end.View.Title, end.Deployments)
				}
			},
		},
		{
			// Same kernel, kargs and version: only ostree/boot.B is swapped.
			name: "rollback-subboot",
			setup: func(f crashFixture) {
				a := fakeV(1)
				a.Files = map[string]string{"usr/share/a": "a"}
				f.commit(a)
				f.deploy(sysroot.DeployOptions{})
				b := fakeV(1)
				b.Files = map[string]string{"usr/share/b": "b"}
				f.commit(b)
				f.deploy(sysroot.DeployOptions{})
			},
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Rollback(ctx)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if end.View.Loader != start.View.Loader || end.View.Checksum == start.View.Checksum {
					t.Errorf("rollback-subboot: loader %s → %s, boots %s → %s", start.View.Loader, end.View.Loader, start.View.Checksum, end.View.Checksum)
				}
			},
		},
		{
			name:  "kargs",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.SetKargs(ctx, 0, []string{"rw", "console=ttyS0"})
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if !strings.HasPrefix(end.View.Options, "rw console=ttyS0 ostree=") {
					t.Errorf("kargs: options %q", end.View.Options)
				}
			},
		},
		{
			name:  "kargs-staged",
			setup: stagedV2,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.SetKargs(ctx, 0, []string{"rw", "staged"})
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if end.Deployments[0].Kargs != "rw staged" || !end.Deployments[0].Staged {
					t.Errorf("kargs-staged: %+v", end.Deployments[0])
				}
			},
		},
		{
			name:  "undeploy",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Undeploy(ctx, 1)
				return err
			},
			// Again means: undeploy the same deployment if it is still there.
			rerun: func(ctx context.Context, sr *sysroot.Sysroot) error {
				if len(sr.Deployments()) < 2 {
					return nil
				}
				_, err := sr.Undeploy(ctx, 1)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if len(end.Deployments) != 1 || end.Deployments[0].Name != start.Deployments[0].Name {
					t.Errorf("undeploy: %+v", end.Deployments)
				}
			},
		},
		{
			name:  "cleanup",
			setup: toClean,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.Cleanup(ctx)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if len(start.Deployments) != 3 || len(end.Deployments) != 2 {
					t.Errorf("cleanup: %d deployments → %d, want 3 → 2", len(start.Deployments), len(end.Deployments))
				}
			},
		},
		{
			name:  "pin",
			setup: v2v1,
			run: func(ctx context.Context, sr *sysroot.Sysroot) error {
				_, err := sr.SetPinned(ctx, 1, true)
				return err
			},
			want: func(t *testing.T, start, end crashState) {
				if !end.Deployments[1].Pinned {
					t.Errorf("pin: %+v", end.Deployments[1])
				}
			},
		},
	}
}

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
