package boot

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/distro"
)

func TestInstallUnits(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	// The tree ships systemd-sysext.service (Debian installs it disabled).
	if err := os.MkdirAll(filepath.Join(root, distro.SystemdUnitDir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, distro.SystemdUnitDir, "systemd-sysext.service"), []byte("[Install]\nWantedBy=sysinit.target\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := InstallUnits(root); err != nil {
			t.Fatalf("InstallUnits = %v", err)
		}
	}
	var got []string
	err := filepath.Walk(filepath.Join(root, distro.SystemdUnitDir), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(root, distro.SystemdUnitDir), p)
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("link %s -> %s is dangling", rel, target)
			}
			rel += " -> " + target
		}
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"boot-complete.target.requires/strata-boot-complete.service -> ../strata-boot-complete.service",
		"multi-user.target.wants/strata-agent.service -> ../strata-agent.service",
		"multi-user.target.wants/strata-boot-complete.service -> ../strata-boot-complete.service",
		"multi-user.target.wants/strata-esp-sync.service -> ../strata-esp-sync.service",
		"multi-user.target.wants/strata-finalize.service -> ../strata-finalize.service",
		"multi-user.target.wants/strata-provision-kargs.service -> ../strata-provision-kargs.service",
		"strata-agent.service",
		"strata-boot-complete.service",
		"strata-esp-sync.service",
		"strata-finalize.service",
		"strata-provision-kargs.service",
		"strata-sysext.service",
		"sysinit.target.wants/strata-sysext.service -> ../strata-sysext.service",
		"sysinit.target.wants/systemd-sysext.service -> ../systemd-sysext.service",
		"systemd-sysext.service",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("InstallUnits tree (-want +got):\n%s", diff)
	}
	for _, g := range maskedGenerators {
		if target, err := os.Readlink(filepath.Join(root, distro.SystemdGeneratorOverrideDir, g)); err != nil || target != "/dev/null" {
			t.Errorf("generator %s: link to %q, %v; want it masked (-> /dev/null)", g, target, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, distro.SystemdUnitDir, "strata-finalize.service"))
	if err != nil || !strings.Contains(string(data), "ExecStop="+distro.StrataBinary+" finalize") {
		t.Errorf("strata-finalize.service = %q, %v, want an ExecStop running strata finalize", data, err)
	}
	// Every placeholder is filled in: the installed units name the binary,
	// the ESP and its automount as package distro says.
	for _, name := range Units() {
		data, err := os.ReadFile(filepath.Join(root, distro.SystemdUnitDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), "@") {
			t.Errorf("installed %s still holds a placeholder:\n%s", name, data)
		}
	}
	sync, _ := os.ReadFile(filepath.Join(root, distro.SystemdUnitDir, "strata-esp-sync.service"))
	for _, want := range []string{"ExecStart=/usr/bin/strata bootloader sync --sysroot / --esp /boot/efi\n", "After=local-fs.target boot-efi.automount\n"} {
		if !strings.Contains(string(sync), want) {
			t.Errorf("strata-esp-sync.service = %q, want a line %q", sync, want)
		}
	}
}
