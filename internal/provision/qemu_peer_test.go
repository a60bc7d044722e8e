//go:build root && peer

package provision_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/initramfs"
	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
	"github.com/strata-os/strata/internal/vm/vmtest"
)

// bootSource boots Debian's kernel in QEMU with an initramfs that strata's initramfs builder
// makes of testdata/sourceinit as /init and the kernel package's modules that mods names (its
// Init and ModulesDir are set here), as strata's own initramfs takes them. cfg gives the rest
// of the machine: its Append follows "console=ttyS0 panic=-1", and the kernel, initramfs,
// logs and the wait for sourceinit's marker are set here. It returns the marker's value (the
// config's digest, or "none") and the console, with how the run ended.
func bootSource(t *testing.T, mods initramfs.Options, cfg vm.Config) (got, console string) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	k := vmtest.DebianKernel(t)
	var err error
	if mods.ModulesDir, err = initramfs.ModulesDir(k.Tree(t), k.Version); err != nil {
		t.Fatal(err)
	}
	mods.Init = vmtest.BuildStatic(t, "./testdata/sourceinit")
	var img bytes.Buffer
	if err := initramfs.Build(&img, mods); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	initrd := filepath.Join(dir, "initrd.img")
	if err := os.WriteFile(initrd, img.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg.Accel, cfg.Kernel, cfg.Initrd = vmtest.Accel(t), k.Vmlinux, initrd
	cfg.Append = "console=ttyS0 panic=-1 " + cfg.Append
	cfg.ConsoleLog, cfg.MarkerLog = filepath.Join(dir, "console.log"), filepath.Join(dir, "markers.log")
	cfg.Until, cfg.Timeout = []string{`^STRATA-MARK source `}, 5*time.Minute
	m, err := vm.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Wait()
	for _, mk := range r.Markers {
		if mk.Name == "source" {
			got = mk.Value
		}
	}
	log, _ := os.ReadFile(cfg.ConsoleLog)
	return got, string(log) + "\n(run ended: " + string(r.Reason) + ")"
}
