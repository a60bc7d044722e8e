//go:build root && peer && e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
	"github.com/strata-os/strata/internal/vm/vmtest"
)

// Time limits of the steps; the measured times here (TCG, 2 busy cores) are 5-10x smaller.
const (
	composeTimeout = 15 * time.Minute
	// QEMU start or reboot to the booted marker: 1-2.5 min under TCG on a busy machine, and once
	// 7 min from the old kernel's reset to the new one's start while five other test suites ran.
	bootTimeout     = 10 * time.Minute
	execTimeout     = 5 * time.Minute // one command in the guest
	fallbackTimeout = 25 * time.Minute
	machineTimeout  = 90 * time.Minute // a QEMU run, whatever happens inside
)

// env is the state the steps of TestE2E hand on to each other.
type env struct {
	start time.Time
	root  string // the source repository
	logs  string // .cache/e2e/<timestamp>: kept
	work  string // logs/work: repository, disk, keys; removed on success
	bin   string // static strata
	cache string // apt package cache shared with the compose tests

	repo, secKey, pubKey string
	url                  string // the repository as the guest sees it
	server               *exec.Cmd

	fleet       *fleet        // release graph and lock server on the host, from the image step on
	prov        *provisioning // the first-boot config's SSH key and port
	provisioned provisioningStatus

	disk, vars string
	data       string // the second disk, which the first-boot config partitions and formats
	runs       int    // QEMU runs so far
	m          *vm.Machine
	accel      vm.Accel

	commits map[string]string // version -> commit
	failed  string            // the first step that failed
	summary []string          // measured numbers, printed at the end
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testutil.RequireRoot(t)
	for tool, pkg := range map[string]string{
		"mmdebstrap": "mmdebstrap", "qemu-system-x86_64": "qemu-system-x86", "sfdisk": "fdisk",
		"mkfs.ext4": "e2fsprogs", "mkfs.vfat": "dosfstools", "mcopy": "mtools",
	} {
		testutil.RequireTool(t, tool, pkg)
	}
	for _, f := range []string{vm.DefaultOVMFCode, vm.DefaultOVMFVars, vmtest.SystemdBoot} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%s missing: install ovmf and systemd-boot-efi (scripts/deps)", f)
		}
	}
	root := testutil.RepoRoot(t)
	e := &env{start: time.Now(), root: root, commits: map[string]string{}}
	e.logs = filepath.Join(root, ".cache", "e2e", e.start.UTC().Format("20060102T150405Z"))
	e.work = filepath.Join(e.logs, "work")
	e.cache = filepath.Join(root, ".cache", "compose-apt")
	for _, d := range []string{e.work, e.cache} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("logs in %s", e.logs)
	// Static: compose copies the running binary into the OS as /usr/bin/strata, and into its
	// initramfs as /init. Built as the Makefile builds it (tags, stripped), so that the OS and its
	// boot are those of a release.
	e.bin = filepath.Join(e.work, "strata")
	cmd := exec.Command("go", "build", "-trimpath", "-tags", "grpcnotrace", "-ldflags=-s -w", "-o", e.bin, "./cmd/strata")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/strata: %v\n%s", err, out)
	}
	e.accel = vmtest.Accel(t)
	return e
}

// close stops what is still running and says where the logs are.
func (e *env) close(t *testing.T) {
	if e.m != nil {
		e.m.Kill()
		e.m.Wait()
	}
	if e.server != nil {
		e.server.Process.Signal(syscall.SIGTERM)
		e.server.Wait()
	}
	if e.fleet != nil {
		e.fleet.close()
	}
	t.Logf("total %s", time.Since(e.start).Round(time.Second))
	for _, s := range e.summary {
		t.Log("  " + s)
	}
	if !t.Failed() {
		os.RemoveAll(e.work)
	}
	t.Logf("logs kept in %s", e.logs)
}

// measure records one measured number for the summary.
func (e *env) measure(t *testing.T, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	t.Log(s)
	e.summary = append(e.summary, s)
}

// step runs one subtest of the chain; after a failure the rest fail at once, naming it.
func (e *env) step(t *testing.T, name string, fn func(t *testing.T)) {
	t.Helper()
	t.Run(name, func(t *testing.T) {
		if e.failed != "" {
			t.Fatalf("needs step %s, which failed", e.failed)
		}
		start := time.Now()
		defer func() {
			if t.Failed() && e.failed == "" {
				e.failed = name
				e.dumpLogs(t)
			}
			t.Logf("step %s: %s", name, time.Since(start).Round(100*time.Millisecond))
		}()
		fn(t)
	})
}

// strata runs the binary on the host, logs its output to logs/NAME.log and returns stdout.
func (e *env) strata(t *testing.T, ctx context.Context, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.CommandContext(ctx, e.bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	log := fmt.Sprintf("$ strata %s\n%s\n-- stderr\n%s", strings.Join(args, " "), stdout.Bytes(), stderr.Bytes())
	os.WriteFile(filepath.Join(e.logs, name+".log"), []byte(log), 0o644)
	if err != nil {
		t.Fatalf("strata %s: %v\n%s", strings.Join(args, " "), err, tail(stderr.String(), 30))
	}
	return stdout.Bytes()
}

// serve starts `strata repo serve` on a free loopback port: QEMU's user network maps the guest's
// 10.0.2.2 to the host's loopback.
func (e *env) serve(t *testing.T) {
	t.Helper()
	cmd := exec.Command(e.bin, "repo", "serve", "--repo", e.repo, "--listen", "127.0.0.1:0")
	stderr, err := os.Create(filepath.Join(e.logs, "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting strata repo serve: %v", err)
	}
	e.server = cmd
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("strata repo serve printed no URL: %v", err)
	}
	m := regexp.MustCompile(`^http://127\.0\.0\.1:(\d+)/`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("strata repo serve printed %q, want http://127.0.0.1:PORT/", line)
	}
	e.url = "http://10.0.2.2:" + m[1] + "/"
	t.Logf("serving %s at %s (guest view)", e.repo, e.url)
}

// compose composes testdata/vVERSION.yaml into the repository and publishes a signed summary.
func (e *env) compose(t *testing.T, version string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), composeTimeout)
	defer cancel()
	manifest := filepath.Join(e.root, "internal", "e2e", "testdata", "v"+version+".yaml")
	start := time.Now()
	out := e.strata(t, ctx, "compose-v"+version, "compose", manifest, "--repo", e.repo,
		"--sign-key", e.secKey, "--cache-dir", e.cache, "--json")
	var res struct {
		Commit   string             `json:"commit"`
		Version  string             `json:"version"`
		Written  int                `json:"objects_written"`
		Bytes    int64              `json:"bytes"`
		Stages   map[string]float64 `json:"stage_seconds"`
		Packages []json.RawMessage  `json:"packages"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("strata compose --json: %v", err)
	}
	if res.Version != version {
		t.Fatalf("composed version %q, want %q", res.Version, version)
	}
	e.measure(t, "compose v%s: %.0fs (download/install %.0fs), %d packages, %d objects written, %s",
		version, time.Since(start).Seconds(), res.Stages["download/install"], len(res.Packages), res.Written, mib(res.Bytes))
	e.strata(t, ctx, "summary-v"+version, "repo", "summary", "--repo", e.repo, "--sign-key", e.secKey)
	e.commits[version] = res.Commit
	return res.Commit
}

// boot starts QEMU on the disk (UEFI with the persistent variable store, user networking, the
// control port), logging to logs/runN-{console,markers}.log.
func (e *env) boot(t *testing.T, allowReboot bool) *vm.Machine {
	t.Helper()
	e.runs++
	prefix := filepath.Join(e.logs, fmt.Sprintf("run%d-", e.runs))
	disks := []vm.Disk{{Path: e.disk}}
	if e.data != "" {
		disks = append(disks, vm.Disk{Path: e.data})
	}
	m, err := vm.Start(context.Background(), vm.Config{
		Accel: e.accel, UEFI: &vm.UEFI{Vars: e.vars}, Disks: disks,
		Net: true, Control: true, AllowReboot: allowReboot,
		Forwards:   []vm.Forward{{HostPort: e.prov.port, GuestPort: 22}},
		ConsoleLog: prefix + "console.log", MarkerLog: prefix + "markers.log",
		Timeout: machineTimeout,
		// Firmware that finds nothing to boot waits in its menu forever: fail at once.
		Failures: append([]string{`No loader found`, `BdsDxe: starting .*"(UiApp|EFI Internal Shell)"`}, vm.DefaultFailures...),
	})
	if err != nil {
		t.Fatalf("starting QEMU: %v", err)
	}
	e.m = m
	return m
}

// stop ends the current QEMU run: a clean power-off if asked, else (or if that takes too long) a
// power cut.
func (e *env) stop(t *testing.T, clean bool) {
	t.Helper()
	m := e.m
	if m == nil {
		return
	}
	e.m = nil
	if clean {
		if _, err := m.Send(context.Background(), "systemctl poweroff"); err == nil {
			select {
			case <-m.Done():
				logRun(t, m.Wait())
				return
			case <-time.After(2 * time.Minute):
				t.Logf("the guest did not power off within 2 minutes: cutting the power")
			}
		}
	}
	m.Kill()
	logRun(t, m.Wait())
}

// logRun logs how a QEMU run ended, its milestones (first appearances, so those of its first
// boot) and its boot markers, with their times since QEMU started.
func logRun(t *testing.T, r vm.Result) {
	t.Logf("QEMU run ended: %s after %s", r.Reason, secs(r.Elapsed))
	for _, ms := range r.Milestones {
		t.Logf("  %7s  milestone %s", secs(ms.At), ms.Pattern)
	}
	for _, mk := range r.Markers {
		if mk.Name != "out" && mk.Name != "done" {
			t.Logf("  %7s  marker %s %s", secs(mk.At), mk.Name, mk.Value)
		}
	}
}

// bootInfo is what the guest's strata-e2e-mark reports once a boot is over.
type bootInfo struct {
	Version, Deployment, BootComplete string
	At                                time.Duration // since QEMU started
	Start                             time.Duration // the boot-start marker
}

// waitBoot waits for the next boot to be over: its boot-start marker, then its booted and
// control-ready markers (markers of earlier boots are skipped by time).
func (e *env) waitBoot(t *testing.T, ctx context.Context) bootInfo {
	t.Helper()
	bs, err := e.m.WaitMarker(ctx, "boot-start")
	if err != nil {
		t.Fatalf("waiting for a boot: %v", err)
	}
	return e.finishBoot(t, ctx, bs)
}

// finishBoot waits for the booted and control-ready markers of the boot that started at bs.
func (e *env) finishBoot(t *testing.T, ctx context.Context, bs vm.Marker) bootInfo {
	t.Helper()
	b, err := e.markerAfter(ctx, "booted", bs.At)
	if err != nil {
		t.Fatalf("waiting for the booted marker: %v", err)
	}
	if _, err := e.markerAfter(ctx, vm.ControlReady, bs.At); err != nil {
		t.Fatalf("waiting for the control port: %v", err)
	}
	f := strings.Fields(b.Value)
	if len(f) != 3 {
		t.Fatalf("booted marker %q: want VERSION DEPLOYMENT RESULT", b.Value)
	}
	return bootInfo{Version: f[0], Deployment: f[1], BootComplete: f[2], At: b.At, Start: bs.At}
}

// markerAfter returns the next marker called name that showed up at or after at.
func (e *env) markerAfter(ctx context.Context, name string, at time.Duration) (vm.Marker, error) {
	for {
		mk, err := e.m.WaitMarker(ctx, name)
		if err != nil || mk.At >= at {
			return mk, err
		}
	}
}

// exec runs a command in the guest and returns its exit status and output (stdout and stderr,
// carried base64-encoded on one marker line).
func (e *env) exec(t *testing.T, command string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	wrapped := `out=$(` + command + ` 2>&1); rc=$?; echo "STRATA-MARK out $(printf '%s' "$out" | base64 -w0)"; exit $rc`
	status, err := e.m.Exec(ctx, wrapped)
	if err != nil {
		t.Fatalf("guest: %s: %v", command, err)
	}
	mk, err := e.m.WaitMarker(ctx, "out")
	if err != nil {
		t.Fatalf("guest: %s: output: %v", command, err)
	}
	out, err := base64.StdEncoding.DecodeString(mk.Value)
	if err != nil {
		t.Fatalf("guest: %s: output marker: %v", command, err)
	}
	return status, string(out)
}

// mustExec runs a command in the guest that must succeed.
func (e *env) mustExec(t *testing.T, command string) string {
	t.Helper()
	status, out := e.exec(t, command)
	if status != 0 {
		t.Fatalf("guest: %s: exit status %d\n%s", command, status, tail(out, 30))
	}
	return out
}

// deployment is the part of `strata status --json` the test reads.
type deployment struct {
	Checksum string `json:"commit"`
	Serial   int    `json:"serial"`
	Version  string `json:"version"`
	Booted   bool   `json:"booted"`
	Pending  bool   `json:"pending"`
	Rollback bool   `json:"rollback"`
	Staged   bool   `json:"staged"`
	Refspec  string `json:"refspec"`
	Digest   string `json:"image_digest"`
	Base     string `json:"base-checksum"` // set on a layered deployment (docs/layering.md)
}

func (d deployment) Name() string { return d.Checksum + "." + strconv.Itoa(d.Serial) }

// status reads `strata status --json` in the guest.
func (e *env) status(t *testing.T) []deployment {
	t.Helper()
	out := e.mustExec(t, "strata status --json")
	var st struct {
		Deployments []deployment `json:"deployments"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("strata status --json in the guest: %v\n%s", err, out)
	}
	return st.Deployments
}

// prepareRootTimes returns the N of every "strata prepare-root: deployment ... ready in N ms"
// line of a console log.
func prepareRootTimes(console string) []int {
	data, _ := os.ReadFile(console)
	var out []int
	for _, m := range regexp.MustCompile(`strata prepare-root: deployment \S+ ready in (\d+) ms`).FindAllSubmatch(data, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		out = append(out, n)
	}
	return out
}

// dumpLogs logs the ends of the current run's console and marker logs.
func (e *env) dumpLogs(t *testing.T) {
	if e.runs == 0 {
		return
	}
	prefix := filepath.Join(e.logs, fmt.Sprintf("run%d-", e.runs))
	for _, f := range []string{"console.log", "markers.log"} {
		data, _ := os.ReadFile(prefix + f)
		t.Logf("--- end of %s%s:\n%s", prefix, f, tail(string(data), 40))
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(s, "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func mib(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }

func secs(d time.Duration) string { return fmt.Sprintf("%.1fs", d.Seconds()) }
