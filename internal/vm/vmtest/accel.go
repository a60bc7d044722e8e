package vmtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
)

// kvmProbeTimeout bounds the KVM proof boot: TCG reaches the marker in about 4 s here, so a
// KVM that needs longer is no faster and is not used.
const kvmProbeTimeout = 30 * time.Second

// Accel returns the accelerator for VM tests: $STRATA_VM_ACCEL when set; otherwise KVM only if
// Debian's kernel, booted directly under KVM, reached its marker on this host, and TCG if not.
// Probing with "-M none" is no proof: on nested-PVM hosts it passes while no kernel boots
// (docs/vm.md). The verdict is cached per host kernel and QEMU version.
func Accel(t testing.TB) vm.Accel {
	t.Helper()
	if env := os.Getenv(vm.AccelEnv); env != "" {
		return vm.Accel(env)
	}
	if _, err := os.Stat("/dev/kvm"); err != nil {
		return vm.AccelTCG
	}
	qemu := testutil.RequireTool(t, vm.DefaultQEMU, "qemu-system-x86")
	release, _ := os.ReadFile("/proc/sys/kernel/osrelease")
	version, _ := exec.Command(qemu, "--version").Output()
	key := sha256.Sum256([]byte(string(release) + "\x00" + string(version)))
	cache := CacheDir(t)
	verdictFile := filepath.Join(cache, "kvm-verdict-"+hex.EncodeToString(key[:8]))
	var verdict vm.Accel
	lockCache(t, cache, "kvm-verdict", func() error {
		if b, err := os.ReadFile(verdictFile); err == nil {
			verdict = vm.Accel(strings.TrimSpace(string(b)))
			return nil
		}
		verdict = vm.AccelTCG
		if ProveKVM(t) {
			verdict = vm.AccelKVM
		}
		return writeAtomic(verdictFile, []byte(string(verdict)+"\n"), 0o644)
	})
	t.Logf("VM accelerator: %s (verdict in %s)", verdict, verdictFile)
	return verdict
}

// ProveKVM boots Debian's kernel directly under KVM with the vm package's marker /init and
// reports whether it reached the marker within 30 s (TCG needs about 4 s).
func ProveKVM(t testing.TB) bool {
	t.Helper()
	k := DebianKernel(t)
	initrd := Initramfs(t, BuildStatic(t, filepath.Join(testutil.RepoRoot(t), "internal", "vm", "testdata", "initmark")))
	r, err := vm.Run(context.Background(), vm.Config{
		Accel: vm.AccelKVM, Kernel: k.Vmlinux, Initrd: initrd,
		Append: "console=ttyS0 panic=-1 strata.test=up", Until: []string{`^STRATA-MARK up$`},
		Timeout: kvmProbeTimeout,
	})
	if err == nil && r.OK(true) {
		return true
	}
	t.Logf("KVM did not boot the test kernel (%s): %s", describe(r, err), lastLine(r.ConsoleTail))
	return false
}

func describe(r vm.Result, err error) string {
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s after %.1fs, QEMU exit status %d", r.Reason, r.Elapsed.Seconds(), r.ExitCode)
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}
