//go:build root

package sysroot_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// The kill -9 crash matrix (issue 4, item 6): the strata binary runs a
// node command on a copy of a starting sysroot big enough that the
// command takes a few hundred milliseconds, and is killed with SIGKILL at
// an instant drawn from a fixed seed in [0, 1.2·D] (D: its uninterrupted
// duration). Then firmware would boot the old or the new deployment,
// complete; `strata status` reads the sysroot back; `strata repo fsck`
// passes; the same command run again converges; `strata cleanup` leaves
// nothing over. docs/crash-matrix.md says what is proven.

const (
	killFiles = 2000             // small files per fake OS version
	killKB    = 4 << 10          // kernel size in KiB
	killSpan  = 1.2              // instants are drawn in [0, killSpan·D]
	killSeed2 = 0x5eed_c4a5_4001 // second word of every PCG seed
)

// bigV is version n of a fake OS with killFiles files (one in ten
// differs between versions) and a killKB KiB kernel.
func bigV(n int) sysroottest.FakeOS {
	o := fakeV(n)
	o.Kernel = strings.Repeat(fmt.Sprintf("kernel %d\n", n), killKB*1024/9)
	o.Initramfs = strings.Repeat(fmt.Sprintf("initramfs %d\n", n), 100*1024/12)
	o.Files = map[string]string{}
	for i := range killFiles {
		c := fmt.Sprintf("file %d\n", i)
		if i%10 == 0 {
			c = fmt.Sprintf("file %d of version %d\n", i, n)
		}
		o.Files[fmt.Sprintf("usr/share/data/%02d/f%04d", i/100, i)] = c
	}
	return o
}

// killCmd is one command of the kill matrix.
type killCmd struct {
	name string
	tmpl string   // starting state (a template name)
	args []string // after "strata", without --sysroot
	runs int      // kill runs (seeds 1..runs)
	// againIfUnstaged: what recovery runs if the state is the old one
	// with the staged deployment discarded (an interrupted finalize).
	againIfUnstaged [][]string
	discardsStaged  bool
	bootTmpfs       bool // S/boot is its own tmpfs
}

func killCmds() []killCmd {
	finalize := []string{"finalize"}
	return []killCmd{
		{name: "deploy-first", tmpl: "empty", args: []string{"deploy", "--os", "fakeos", "--karg", "rw", "fakeos/stable"}, runs: 35},
		{name: "deploy-merge", tmpl: "v1", args: []string{"deploy", "fakeos/stable"}, runs: 45},
		{name: "rollback", tmpl: "v2v1", args: []string{"rollback"}, runs: 35},
		{name: "kargs", tmpl: "v2v1", args: []string{"kargs", "--append", "crash=1"}, runs: 35},
		{name: "cleanup", tmpl: "clean", args: []string{"cleanup"}, runs: 40},
		{name: "finalize", tmpl: "staged", args: finalize, runs: 40, discardsStaged: true,
			againIfUnstaged: [][]string{{"deploy", "--stage", "fakeos/stable"}, finalize}},
		{name: "deploy-merge-boot-tmpfs", tmpl: "v1", args: []string{"deploy", "fakeos/stable"}, runs: 20, bootTmpfs: true},
	}
}

// killEnv is what every kill run shares.
type killEnv struct {
	bin   string
	tmpls map[string]string // template name → sysroot
	work  string

	mu     sync.Mutex
	counts map[string]map[string]int // command → outcome → runs
}

func (e *killEnv) count(cmd, out string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.counts[cmd] == nil {
		e.counts[cmd] = map[string]int{}
	}
	e.counts[cmd][out]++
}

// strata runs the binary on the sysroot s and returns its stdout.
func (e *killEnv) strata(s string, args ...string) ([]byte, error) {
	args = append(slices.Clone(args), "--sysroot", s)
	cmd := exec.Command(e.bin, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("strata %s: %w\n%s", strings.Join(args, " "), err, errb.String())
	}
	return []byte(out.String()), nil
}

// fsck runs strata repo fsck on the sysroot's repository.
func (e *killEnv) fsck(s string) error {
	out, err := exec.Command(e.bin, "repo", "fsck", "--repo", filepath.Join(s, "ostree/repo")).CombinedOutput()
	if err != nil {
		return fmt.Errorf("strata repo fsck: %w\n%s", err, out)
	}
	return nil
}

// state is readCrashState through the command line: the deployment list
// of `strata status --json`, each deployment's /etc, and the firmware
// walk.
func (e *killEnv) state(s string) (crashState, error) {
	out, err := e.strata(s, "status", "--json")
	if err != nil {
		return crashState{}, err
	}
	var st struct {
		Deployments []struct {
			OSName   string   `json:"osname"`
			Checksum string   `json:"checksum"`
			Serial   int      `json:"serial"`
			Refspec  string   `json:"refspec"`
			Kargs    []string `json:"kargs"`
			Pinned   bool     `json:"pinned"`
			Staged   bool     `json:"staged"`
			Path     string   `json:"path"`
		} `json:"deployments"`
	}
	if err := json.Unmarshal(out, &st); err != nil {
		return crashState{}, fmt.Errorf("strata status --json: %w", err)
	}
	var cs crashState
	for _, d := range st.Deployments {
		etc, err := sysroottest.Tree(filepath.Join(s, d.Path, "etc"))
		if err != nil {
			return crashState{}, err
		}
		cs.Deployments = append(cs.Deployments, crashDep{Name: fmt.Sprintf("%s.%d", d.Checksum, d.Serial), OSName: d.OSName,
			Refspec: d.Refspec, Kargs: strings.Join(d.Kargs, " "), Pinned: d.Pinned, Staged: d.Staged, Etc: etc})
	}
	if _, err := os.Lstat(filepath.Join(s, "boot/loader")); errors.Is(err, os.ErrNotExist) {
		return cs, nil
	}
	v, err := sysroottest.BootedView(s)
	if err != nil {
		return crashState{}, fmt.Errorf("BootedView: %w", err)
	}
	if err := sysroottest.KernelComplete(s, v); err != nil {
		return crashState{}, err
	}
	cs.View = v
	return cs, nil
}

// copyStart copies the template of c to a fresh sysroot, with S/boot on
// its own tmpfs if c says so, and returns it and a function removing it.
func (e *killEnv) copyStart(t *testing.T, c killCmd, name string) (string, func()) {
	t.Helper()
	s := filepath.Join(e.work, name)
	sysroottest.CopySysroot(t, e.tmpls[c.tmpl], s)
	mounted := false
	done := func() {
		if mounted {
			// A killed command's last references may still be going
			// away; a lazy unmount detaches the tmpfs regardless.
			boot := filepath.Join(s, "boot")
			err := unix.Unmount(boot, 0)
			if errors.Is(err, unix.EBUSY) {
				err = unix.Unmount(boot, unix.MNT_DETACH)
			}
			if err != nil {
				t.Errorf("unmounting %s/boot: %v", s, err)
			}
		}
		sysroottest.ClearImmutable(s)
		if err := os.RemoveAll(s); err != nil {
			t.Errorf("removing %s: %v", s, err)
		}
	}
	if !c.bootTmpfs {
		return s, done
	}
	boot, disk := filepath.Join(s, "boot"), filepath.Join(s, "boot.disk")
	if err := os.Rename(boot, disk); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(boot, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", boot, "tmpfs", 0, "mode=0755"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", boot, err)
	}
	mounted = true
	if out, err := exec.Command("cp", "-a", disk+"/.", boot+"/").CombinedOutput(); err != nil {
		done()
		t.Fatalf("cp -a %s: %v\n%s", disk, err, out)
	}
	if err := os.RemoveAll(disk); err != nil {
		done()
		t.Fatal(err)
	}
	return s, done
}

// runAll runs each command line in turn on s.
func (e *killEnv) runAll(s string, cmds [][]string) error {
	for _, a := range cmds {
		if _, err := e.strata(s, a...); err != nil {
			return err
		}
	}
	return nil
}

// killRefs are the states of one command: before, after one run, after
// two, and the uninterrupted duration.
type killRefs struct {
	start, once, twice crashState
	d                  time.Duration
}

// measure runs c uninterrupted four times, two at a time as the kill
// runs go, each on a fresh copy: D is the shortest duration (load only
// ever slows a run down; a D inflated by a busy moment would let most
// runs finish before their kill), and every run must end in the same
// state. The first copy then runs c again.
func (e *killEnv) measure(t *testing.T, c killCmd) killRefs {
	t.Helper()
	var r killRefs
	var ss []string
	for i := range 4 {
		s, done := e.copyStart(t, c, fmt.Sprintf("%s-ref%d", c.name, i))
		defer done()
		ss = append(ss, s)
	}
	var err error
	if r.start, err = e.state(ss[0]); err != nil {
		t.Fatalf("%s: starting state: %v", c.name, err)
	}
	ds := make([]time.Duration, len(ss))
	errs := make([]error, len(ss))
	for p := 0; p < len(ss); p += 2 {
		var wg sync.WaitGroup
		for i := p; i < p+2; i++ {
			wg.Go(func() {
				t0 := time.Now()
				_, errs[i] = e.strata(ss[i], c.args...)
				ds[i] = time.Since(t0)
			})
		}
		wg.Wait()
	}
	for i, s := range ss {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		once, err := e.state(s)
		if err != nil {
			t.Fatalf("%s: state after a run: %v", c.name, err)
		}
		if i == 0 {
			r.once = once
		} else if diff := cmp.Diff(r.once, once); diff != "" {
			t.Fatalf("%s: two uninterrupted runs end differently (-first +other):\n%s", c.name, diff)
		}
		mustClean(t, s, "after an uninterrupted "+c.name)
	}
	r.d = slices.Min(ds)
	if cmp.Equal(r.start, r.once) {
		t.Fatalf("%s changes nothing", c.name)
	}
	if err := e.runAll(ss[0], e.again(c)); err != nil {
		t.Fatal(err)
	}
	if r.twice, err = e.state(ss[0]); err != nil {
		t.Fatalf("%s: state after two runs: %v", c.name, err)
	}
	return r
}

// again is what recovery runs: the same command.
func (e *killEnv) again(c killCmd) [][]string { return [][]string{c.args} }

// kill runs c on a fresh copy, SIGKILLs it after instant, checks the
// result and recovery, and returns the outcome.
func (e *killEnv) kill(t *testing.T, c killCmd, refs killRefs, seed int, instant time.Duration) string {
	s, done := e.copyStart(t, c, fmt.Sprintf("%s-%03d", c.name, seed))
	defer done()
	cmd := exec.Command(e.bin, append(slices.Clone(c.args), "--sysroot", s)...)
	var errb strings.Builder
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
	timer := time.NewTimer(instant)
	select {
	case werr = <-exited:
		timer.Stop()
	case <-timer.C:
		cmd.Process.Signal(syscall.SIGKILL)
		werr = <-exited
	}
	killed := false
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
		killed = true
	} else if werr != nil {
		t.Fatalf("strata %s exited before the kill: %v\n%s", strings.Join(c.args, " "), werr, errb.String())
	}

	// (a) old or new, complete, and read back by strata status.
	got, err := e.state(s)
	if err != nil {
		t.Fatalf("after a kill at %v: %v", instant, err)
	}
	out := outcome(got, refs.start, refs.once, c.discardsStaged)
	if out == "" {
		t.Fatalf("after a kill at %v the state is neither old nor new:\n-old +got:\n%s\n-new +got:\n%s", instant, cmp.Diff(refs.start, got), cmp.Diff(refs.once, got))
	}
	left, err := sysroottest.Leftovers(s)
	if err != nil {
		t.Fatalf("Leftovers after a kill: %v", err)
	}
	// The label says where the kill landed: before the commit point
	// (old, with or without partial work on disk), after it (new: only
	// the cleanup phase remained, swept or not yet), or after the end.
	label := out
	switch {
	case !killed:
		label = "finished-before-kill"
		if out != "new" || len(left) > 0 {
			t.Errorf("an uninterrupted run left %s, leftovers %q", out, left)
		}
	case out == "new" && len(left) > 0:
		label = "new-in-cleanup-unswept"
	case out == "new":
		label = "new-in-cleanup-swept"
	case len(left) > 0:
		label = out + "-partial"
	}
	// (b) the repository is sound.
	if err := e.fsck(s); err != nil {
		t.Errorf("after a kill at %v: %v", instant, err)
	}
	// (c) the same command again converges.
	again, want := e.again(c), refs.once
	switch out {
	case "new":
		want = refs.twice
	case "old-unstaged":
		again = c.againIfUnstaged
	}
	if err := e.runAll(s, again); err != nil {
		t.Fatalf("after a kill at %v (%s), running again: %v", instant, label, err)
	}
	st, err := e.state(s)
	if err != nil {
		t.Fatalf("after a kill at %v (%s) and a re-run: %v", instant, label, err)
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("after a kill at %v (%s) a re-run does not converge (-want +got):\n%s", instant, label, diff)
	}
	// (d) nothing is left over: the re-run's own cleanup swept it, or
	// (a finalize, which does not prune, or one with nothing to do) an
	// explicit cleanup does.
	if c.args[0] == "finalize" {
		if _, err := e.strata(s, "cleanup"); err != nil {
			t.Fatal(err)
		}
	}
	mustClean(t, s, fmt.Sprintf("after a kill at %v (%s) and a re-run", instant, label))
	return label
}

// buildTemplates makes the starting sysroots of killCmds under dir.
func buildTemplates(t *testing.T, dir string) map[string]string {
	ctx := context.Background()
	tmpls := map[string]string{}
	step := func(name, from string, build func(f crashFixture)) {
		s := filepath.Join(dir, name)
		if from == "" {
			if err := sysroot.Init(s, "fakeos"); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sysroottest.ClearImmutable(s) })
		} else {
			sysroottest.CopySysroot(t, tmpls[from], s)
		}
		sr, err := sysroot.Open(s)
		if err != nil {
			t.Fatal(err)
		}
		defer sr.Close()
		build(crashFixture{t, ctx, s, sr, bigV})
		tmpls[name] = s
	}
	step("empty", "", func(f crashFixture) { f.commitV(1) })
	step("v1", "empty", func(f crashFixture) {
		d := f.deploy(sysroot.DeployOptions{Kargs: []string{"rw", "quiet"}})
		f.write(d.Path()+"/etc/hostname", "myhost\n")
		f.write(d.Path()+"/etc/local.conf", "mine\n")
		f.remove(d.Path() + "/etc/conf.d/a.conf")
		f.commitV(2)
	})
	step("v2v1", "v1", func(f crashFixture) { f.deploy(sysroot.DeployOptions{}) })
	step("staged", "v1", func(f crashFixture) {
		f.deploy(sysroot.DeployOptions{Stage: true})
		f.write(f.sr.Deployments()[1].Path()+"/etc/late.conf", "late\n")
	})
	step("clean", "v2v1", func(f crashFixture) {
		_, err := f.sr.SetPinned(ctx, 1, true)
		f.must(err)
		f.commitV(3)
		f.deploy(sysroot.DeployOptions{})
		_, err = f.sr.SetPinned(ctx, 2, false)
		f.must(err)
		d := f.sr.Deployments()[2]
		f.write(fmt.Sprintf("ostree/deploy/fakeos/deploy/%s.7/usr/x", d.Checksum), "orphan\n")
		f.write("boot/ostree/fakeos-"+strings.Repeat("0", 64)+"/vmlinuz-x", "stale\n")
	})
	return tmpls
}

// tmpfsDir mounts a tmpfs on a fresh temporary directory for the kill
// runs: each copies and then removes a sysroot of several thousand files,
// which takes seconds on a busy disk and milliseconds in memory. A
// SIGKILL does not drop the page cache, so what a killed process leaves
// behind does not depend on the file system.
func tmpfsDir(t *testing.T) string {
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "mode=0755,size=2g"); err != nil {
		t.Fatalf("mounting a tmpfs on %s: %v", dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// buildStrata builds the strata binary into dir.
func buildStrata(t *testing.T, dir string) string {
	goTool := testutil.RequireTool(t, "go", "golang-go")
	bin := filepath.Join(dir, "strata")
	cmd := exec.Command(goTool, "build", "-o", bin, "./cmd/strata")
	cmd.Dir = testutil.RepoRoot(t)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=-buildvcs=false")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/strata: %v\n%s", err, out)
	}
	return bin
}

func TestCrashMatrixKill(t *testing.T) {
	testutil.RequireRoot(t)
	t0 := time.Now()
	dir := tmpfsDir(t)
	e := &killEnv{bin: buildStrata(t, dir), work: filepath.Join(dir, "runs"), counts: map[string]map[string]int{}}
	if err := os.Mkdir(e.work, 0o755); err != nil {
		t.Fatal(err)
	}
	e.tmpls = buildTemplates(t, filepath.Join(dir, "templates"))
	t.Logf("binary and templates: %v", time.Since(t0).Round(time.Millisecond))

	cmds := killCmds()
	refs := make([]killRefs, len(cmds))
	for i, c := range cmds {
		refs[i] = e.measure(t, c)
		t.Logf("%s: uninterrupted %v", c.name, refs[i].d.Round(time.Millisecond))
	}
	total := 0
	t.Run("kills", func(t *testing.T) {
		for i, c := range cmds {
			for seed := 1; seed <= c.runs; seed++ {
				total++
				r := rand.New(rand.NewPCG(uint64(seed), killSeed2+uint64(i)))
				instant := time.Duration(r.Float64() * killSpan * float64(refs[i].d))
				t.Run(fmt.Sprintf("%s/seed-%03d", c.name, seed), func(t *testing.T) {
					t.Parallel()
					e.count(c.name, e.kill(t, c, refs[i], seed, instant))
				})
			}
		}
	})
	for i, c := range cmds {
		before, after := 0, 0
		for k, n := range e.counts[c.name] {
			switch {
			case strings.HasPrefix(k, "old"):
				before += n
			case strings.HasPrefix(k, "new"):
				after += n
			}
		}
		t.Logf("crash-matrix counts: kill %s (%d runs, D=%v): %d before the commit point, %d after it (cleanup phase); %s",
			c.name, c.runs, refs[i].d.Round(time.Millisecond), before, after, fmtCounts(e.counts[c.name]))
	}
	killed := total
	for _, m := range e.counts {
		killed -= m["finished-before-kill"]
	}
	t.Logf("crash-matrix counts: %d runs, %d killed before they finished, in %v", total, killed, time.Since(t0).Round(time.Second))
}
