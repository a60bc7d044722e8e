//go:build root && peer

package provision_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/prepareroot"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
	"github.com/strata-os/strata/internal/vm/vmtest"
	"github.com/u-root/u-root/pkg/cpio"
)

// TestFwCfgInQEMU boots Debian's kernel in QEMU with a config given as the fw_cfg entry
// opt/com.coreos/config, Fedora CoreOS's way, and an initramfs whose /init loads the first-boot
// modules as prepare-root does (qemu_fw_cfg, from the kernel's package) and reads the config
// with provision.FwCfg: it must get exactly the bytes given to QEMU.
func TestFwCfgInQEMU(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	k := vmtest.DebianKernel(t)
	mod := "lib/modules/" + k.Version + "/kernel/drivers/firmware/qemu_fw_cfg.ko"
	var ko, stderr bytes.Buffer
	tar := exec.Command("bash", "-c", `set -o pipefail; dpkg-deb --fsys-tarfile "$1" | tar -xO "./$2"`, "bash", k.Deb, mod)
	tar.Stdout, tar.Stderr = &ko, &stderr
	if err := tar.Run(); err != nil || ko.Len() == 0 {
		t.Fatalf("extracting %s from %s: %v\n%s", mod, k.Deb, err, stderr.Bytes())
	}
	initrd := vmtest.Initramfs(t, vmtest.BuildStatic(t, "./testdata/sourceinit"),
		cpio.Directory("etc", 0o755), cpio.Directory("lib", 0o755), cpio.Directory("lib/modules", 0o755),
		cpio.Directory("lib/modules/"+k.Version, 0o755), cpio.Directory("lib/modules/"+k.Version+"/kernel", 0o755),
		cpio.Directory("lib/modules/"+k.Version+"/kernel/drivers", 0o755),
		cpio.Directory("lib/modules/"+k.Version+"/kernel/drivers/firmware", 0o755),
		cpio.StaticRecord(ko.Bytes(), cpio.Info{Name: mod, Mode: cpio.S_IFREG | 0o644}),
		cpio.StaticRecord([]byte("/"+mod+"\n"), cpio.Info{Name: prepareroot.FirstBootModulesList[1:], Mode: cpio.S_IFREG | 0o644}))
	dir := t.TempDir()
	cfg := []byte(`{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}`)
	cfgFile := filepath.Join(dir, "node.ign")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := vm.Start(context.Background(), vm.Config{
		Accel: vmtest.Accel(t), Kernel: k.Vmlinux, Initrd: initrd, Append: "console=ttyS0 panic=-1 strata.source=fwcfg",
		ConsoleLog: filepath.Join(dir, "console.log"), MarkerLog: filepath.Join(dir, "markers.log"),
		Until: []string{`^STRATA-MARK source `}, Timeout: 5 * time.Minute,
		ExtraArgs: []string{"-fw_cfg", "name=opt/com.coreos/config,file=" + cfgFile},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := m.Wait()
	console, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	var got string
	for _, mk := range r.Markers {
		if mk.Name == "source" {
			got = mk.Value
		}
	}
	if want := provconfig.Digest(cfg); got != want {
		t.Fatalf("config read from fw_cfg in the guest: %q, want %s (run ended: %s)\nconsole:\n%s", got, want, r.Reason, console)
	}
}
