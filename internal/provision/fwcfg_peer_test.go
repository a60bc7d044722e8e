//go:build root && peer

package provision_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/initramfs"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/vm"
)

// TestFwCfgInQEMU boots Debian's kernel in QEMU with a config given as the fw_cfg entry
// opt/com.coreos/config, Fedora CoreOS's way, and an initramfs whose /init loads the first-boot
// modules as prepare-root does (qemu_fw_cfg, from the kernel's package) and reads the config
// with provision.FwCfg: it must get exactly the bytes given to QEMU.
func TestFwCfgInQEMU(t *testing.T) {
	cfg := []byte(`{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}`)
	cfgFile := filepath.Join(t.TempDir(), "node.ign")
	if err := os.WriteFile(cfgFile, cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	got, console := bootSource(t, initramfs.Options{Modules: []string{}, FirstBootModules: []string{"qemu_fw_cfg"}}, vm.Config{
		Append:    "strata.source=fwcfg",
		ExtraArgs: []string{"-fw_cfg", "name=opt/com.coreos/config,file=" + cfgFile},
	})
	if want := provconfig.Digest(cfg); got != want {
		t.Fatalf("config read from fw_cfg in the guest: %q, want %s\nconsole:\n%s", got, want, console)
	}
}
