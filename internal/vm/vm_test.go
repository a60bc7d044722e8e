//go:build root && peer

package vm_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
	"github.com/strata-os/strata/internal/vm/vmtest"
	"github.com/u-root/u-root/pkg/cpio"
)

// The VM tests boot Debian's kernel under TCG, one at a time (no t.Parallel: two TCG guests
// on a 2-core host slow each other down past their timeouts).

const bootTimeout = 300 * time.Second

// direct returns a direct-boot config of Debian's kernel with the initmark /init in mode.
func direct(t *testing.T, kernel, mode string) vm.Config {
	t.Helper()
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	initrd := vmtest.Initramfs(t, vmtest.BuildStatic(t, "./testdata/initmark"))
	dir := t.TempDir()
	logTailsOnFailure(t, dir)
	return vm.Config{
		Accel:      vmtest.Accel(t),
		Kernel:     kernel,
		Initrd:     initrd,
		Append:     "console=ttyS0 panic=-1 strata.test=" + mode,
		ConsoleLog: dir + "/console.log",
		MarkerLog:  dir + "/markers.log",
		Timeout:    bootTimeout,
	}
}

// logTailsOnFailure logs the end of the console and marker logs in dir (console.log,
// markers.log) if the test fails, before t.TempDir removes them: a guest that hangs until the
// test's deadline leaves no other trace of where it stopped.
func logTailsOnFailure(t *testing.T, dir string) {
	t.Helper()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, name := range []string{"console.log", "markers.log"} {
			b, err := os.ReadFile(dir + "/" + name)
			if err != nil {
				t.Logf("%s: %v", name, err)
				continue
			}
			lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
			t.Logf("last lines of %s:\n%s", name, strings.Join(lines[max(0, len(lines)-40):], "\n"))
		}
	})
}

func logResult(t *testing.T, r vm.Result) {
	t.Helper()
	t.Logf("reason %s after %.1fs, exited %v (status %d)", r.Reason, r.Elapsed.Seconds(), r.Exited, r.ExitCode)
	for _, m := range r.Milestones {
		t.Logf("  %6.1fs  %s", m.At.Seconds(), m.Pattern)
	}
	for _, m := range r.Markers {
		t.Logf("  %6.1fs  marker %s %s", m.At.Seconds(), m.Name, m.Value)
	}
}

func TestDirectBoot(t *testing.T) {
	testutil.RequireRoot(t)
	k := vmtest.DebianKernel(t)
	for _, tc := range []struct{ name, kernel string }{
		{"vmlinux", k.Vmlinux},
		{"bzImage", k.BzImage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := direct(t, tc.kernel, "up")
			cfg.Until = []string{`^STRATA-MARK up$`}
			r, err := vm.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, r)
			if !r.OK(true) {
				t.Fatalf("Run(%s) = %s (exited %v, status %d), want marker and a clean exit; console:\n%s", tc.name, r.Reason, r.Exited, r.ExitCode, r.ConsoleTail)
			}
			if len(r.Markers) != 1 || r.Markers[0].Name != "up" {
				t.Errorf("Run(%s) markers = %v, want [up]", tc.name, r.Markers)
			}
			got := map[string]bool{}
			for _, m := range r.Milestones {
				got[m.Pattern] = true
				if m.At <= 0 || m.At > r.Elapsed {
					t.Errorf("milestone %q at %v, want within (0, %v]", m.Pattern, m.At, r.Elapsed)
				}
			}
			for _, want := range []string{`Linux version`, `Run /init`} {
				if !got[want] {
					t.Errorf("Run(%s) milestones = %v, want %q among them", tc.name, r.Milestones, want)
				}
			}
			t.Logf("TIME %s: marker at %.1fs, QEMU exit at %.1fs", tc.name, r.Markers[0].At.Seconds(), r.Elapsed.Seconds())
		})
	}
}

// noQEMU fails if a QEMU process whose command line names path is still alive.
func noQEMU(t *testing.T, path string) {
	t.Helper()
	out, _ := exec.Command("pgrep", "-af", "qemu-system").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, path) {
			t.Errorf("QEMU still running after the run ended: %s", line)
		}
	}
}

func TestFailureAndTimeout(t *testing.T) {
	testutil.RequireRoot(t)
	k := vmtest.DebianKernel(t)
	for _, tc := range []struct {
		name, mode string
		timeout    time.Duration
		want       vm.Reason
	}{
		{"fatal", "fatal", bootTimeout, vm.ReasonFailure},
		{"timeout", "hang", 3 * time.Second, vm.ReasonTimeout},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := direct(t, k.Vmlinux, tc.mode)
			cfg.Until = []string{`^STRATA-MARK up$`}
			cfg.Timeout = tc.timeout
			r, err := vm.Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			logResult(t, r)
			if r.Reason != tc.want {
				t.Fatalf("Run(mode %s) = %s, want %s; console:\n%s", tc.mode, r.Reason, tc.want, r.ConsoleTail)
			}
			if tc.want == vm.ReasonFailure && !strings.Contains(r.Failure, "FATAL") {
				t.Errorf("Run(mode %s).Failure = %q, want the FATAL line", tc.mode, r.Failure)
			}
			if tc.want == vm.ReasonTimeout && (r.Exited || r.Elapsed < tc.timeout || r.Elapsed > tc.timeout+10*time.Second) {
				t.Errorf("Run(mode %s) exited %v after %v, want killed just after %v", tc.mode, r.Exited, r.Elapsed, tc.timeout)
			}
			noQEMU(t, cfg.ConsoleLog)
		})
	}
}

func TestControl(t *testing.T) {
	testutil.RequireRoot(t)
	k := vmtest.DebianKernel(t)
	cfg := direct(t, k.Vmlinux, "control")
	cfg.Control = true
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	if _, err := m.WaitMarker(ctx, vm.ControlReady); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		want int
	}{
		{"mark hello world", 0},
		{"exit 3", 3},
		{"nosuchcommand", 127},
	} {
		got, err := m.Exec(ctx, tc.cmd)
		if err != nil || got != tc.want {
			t.Errorf("Exec(%q) = %d, %v, want %d", tc.cmd, got, err, tc.want)
		}
	}
	if mk, err := m.WaitMarker(ctx, "hello"); err != nil || mk.Value != "world" {
		t.Errorf("WaitMarker(hello) = %+v, %v, want value world", mk, err)
	}
	if _, err := m.Send(ctx, "poweroff"); err != nil {
		t.Fatal(err)
	}
	r := m.Wait()
	logResult(t, r)
	if r.Reason != vm.ReasonExited || !r.Exited || r.ExitCode != 0 {
		t.Errorf("after poweroff: %s (exited %v, status %d), want a clean exit", r.Reason, r.Exited, r.ExitCode)
	}
	if _, err := m.WaitMarker(ctx, "never"); err == nil {
		t.Errorf("WaitMarker(never) after the run = nil error, want ErrStopped")
	}
}

func TestUEFIBoot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	if _, err := os.Stat(vm.DefaultOVMFCode); err != nil {
		t.Fatalf("%s missing: install the Debian package ovmf (scripts/deps)", vm.DefaultOVMFCode)
	}
	k := vmtest.DebianKernel(t)
	initrd := vmtest.Initramfs(t, vmtest.BuildStatic(t, "./testdata/initmark"))
	disk := vmtest.ESPDisk(t, vmtest.ESP{
		Files: map[string]string{"vmlinuz": k.BzImage, "initrd": initrd},
		// Boot-counted, so the run also shows systemd-boot renaming it before the kernel starts.
		Entries: map[string]string{"strata-test+3.conf": "title strata test\nlinux /vmlinuz\ninitrd /initrd\noptions console=ttyS0 panic=-1 strata.test=up\n"},
	})
	dir := t.TempDir()
	logTailsOnFailure(t, dir)
	vars := dir + "/vars.fd"
	cfg := vm.Config{
		Accel:      vmtest.Accel(t),
		UEFI:       &vm.UEFI{Vars: vars},
		Disks:      []vm.Disk{{Path: disk}},
		ConsoleLog: dir + "/console.log",
		MarkerLog:  dir + "/markers.log",
		Until:      []string{`^STRATA-MARK up$`},
		Timeout:    bootTimeout,
	}
	r, err := vm.Run(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	logResult(t, r)
	if !r.OK(true) {
		t.Fatalf("Run(UEFI) = %s (exited %v, status %d), want marker and a clean exit; console:\n%s", r.Reason, r.Exited, r.ExitCode, r.ConsoleTail)
	}
	var bds bool
	for _, m := range r.Milestones {
		bds = bds || m.Pattern == `BdsDxe: starting`
	}
	if !bds {
		t.Errorf("Run(UEFI) milestones = %v, want BdsDxe: starting", r.Milestones)
	}
	if _, err := os.Stat(vars); err != nil {
		t.Errorf("UEFI variable store not kept: %v", err)
	}
	files := vmtest.ESPFiles(t, disk)
	if !slices.Contains(files, "loader/entries/strata-test+2-1.conf") {
		t.Errorf("ESP files after boot = %v, want the entry renamed to strata-test+2-1.conf", files)
	}
	t.Logf("TIME UEFI: marker at %.1fs, QEMU exit at %.1fs", r.Markers[0].At.Seconds(), r.Elapsed.Seconds())
}

// busyboxInit is /init for the guest-script test: busybox's shell runs the control script that
// test images install (vmtest.ControlScript).
const busyboxInit = `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
mount -t devtmpfs devtmpfs /dev
mount -t proc proc /proc
/usr/local/sbin/strata-vm-control
echo "[init] FATAL: strata-vm-control ended with status $?"
poweroff -f
`

func TestGuestControlScript(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	k := vmtest.DebianKernel(t)
	bb, err := os.ReadFile(vmtest.Busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	logTailsOnFailure(t, dir)
	initPath := dir + "/init"
	if err := os.WriteFile(initPath, []byte(busyboxInit), 0o755); err != nil {
		t.Fatal(err)
	}
	initrd := vmtest.Initramfs(t, initPath,
		cpio.StaticRecord(bb, cpio.Info{Name: "bin/busybox", Mode: cpio.S_IFREG | 0o755}),
		cpio.StaticRecord(vmtest.ControlScript, cpio.Info{Name: "usr/local/sbin/strata-vm-control", Mode: cpio.S_IFREG | 0o755}))
	cfg := vm.Config{
		Accel:  vmtest.Accel(t),
		Kernel: k.Vmlinux, Initrd: initrd, Append: "console=ttyS0 panic=-1",
		Control: true, ConsoleLog: dir + "/console.log", MarkerLog: dir + "/markers.log", Timeout: bootTimeout,
	}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	if _, err := m.WaitMarker(ctx, vm.ControlReady); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cmd  string
		want int
	}{
		{"echo hello from $(uname -s); exit 4", 4},
		{"echo STRATA-MARK custom yes", 0},
		{"test -c /dev/ttyS2", 0},
	} {
		got, err := m.Exec(ctx, tc.cmd)
		if err != nil || got != tc.want {
			t.Errorf("Exec(%q) = %d, %v, want %d", tc.cmd, got, err, tc.want)
		}
	}
	if mk, err := m.WaitMarker(ctx, "custom"); err != nil || mk.Value != "yes" {
		t.Errorf("WaitMarker(custom) = %+v, %v, want value yes", mk, err)
	}
	if _, err := m.Send(ctx, "poweroff -f"); err != nil {
		t.Fatal(err)
	}
	r := m.Wait()
	logResult(t, r)
	if r.Reason != vm.ReasonExited || r.ExitCode != 0 {
		t.Errorf("after poweroff -f: %s (exited %v, status %d), want a clean exit; console:\n%s", r.Reason, r.Exited, r.ExitCode, r.ConsoleTail)
	}
	log, _ := os.ReadFile(cfg.MarkerLog)
	// The guest's tty turns LF into CRLF on the marker port.
	if !strings.Contains(strings.ReplaceAll(string(log), "\r", ""), "hello from Linux\n") {
		t.Errorf("marker log = %q, want the command's output", log)
	}
}

// TestKill cuts the power of a running machine: QEMU is gone at once, and the run says so.
func TestKill(t *testing.T) {
	testutil.RequireRoot(t)
	k := vmtest.DebianKernel(t)
	cfg := direct(t, k.Vmlinux, "control")
	cfg.Control = true
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WaitMarker(ctx, vm.ControlReady); err != nil {
		t.Fatal(err)
	}
	m.Kill()
	r := m.Wait()
	logResult(t, r)
	if r.Reason != vm.ReasonKilled || r.Exited {
		t.Errorf("after Kill: %s (exited %v), want killed", r.Reason, r.Exited)
	}
	if _, err := m.Exec(ctx, "mark late"); !errors.Is(err, vm.ErrStopped) {
		t.Errorf("Exec after Kill = %v, want ErrStopped", err)
	}
	noQEMU(t, cfg.ConsoleLog)
}

// TestProveKVM: without /dev/kvm the proof boot fails fast; with it, whatever it decides is
// what Accel caches.
func TestProveKVM(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	_, statErr := os.Stat("/dev/kvm")
	start := time.Now()
	got := vmtest.ProveKVM(t)
	t.Logf("ProveKVM() = %v after %.1fs", got, time.Since(start).Seconds())
	if statErr != nil && got {
		t.Errorf("ProveKVM() without /dev/kvm = true, want false")
	}
}

// TestReboot: with AllowReboot the guest's reboots happen inside one QEMU run, and WaitMarker
// returns one occurrence of a marker per boot.
func TestReboot(t *testing.T) {
	testutil.RequireRoot(t)
	k := vmtest.DebianKernel(t)
	cfg := direct(t, k.Vmlinux, "reboot")
	cfg.AllowReboot = true
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	m, err := vm.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Kill()
	first, err := m.WaitMarker(ctx, "boot")
	if err != nil {
		t.Fatal(err)
	}
	second, err := m.WaitMarker(ctx, "boot")
	if err != nil {
		t.Fatal(err)
	}
	if second.At <= first.At {
		t.Errorf("second boot marker at %v, want after the first at %v", second.At, first.At)
	}
	m.Kill()
	r := m.Wait()
	logResult(t, r)
	if len(r.Markers) < 2 || r.Reason != vm.ReasonKilled {
		t.Errorf("run = %s with %d markers, want killed after at least 2 boots", r.Reason, len(r.Markers))
	}
}
