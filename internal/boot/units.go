package boot

import (
	"embed"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/distro"
)

//go:embed units/*.service
var units embed.FS

// unitVars are the placeholders of the embedded units and their values:
// the units name the strata binary, the ESP and its automount unit only
// through package distro.
var unitVars = strings.NewReplacer(
	"@STRATA_BINARY@", distro.StrataBinary,
	"@ESP@", distro.ESPMountPoint,
	"@ESP_UNIT@", distro.ESPMountUnit(),
)

// Units returns the names of the systemd units InstallUnits installs.
func Units() []string {
	des, _ := units.ReadDir("units")
	var out []string
	for _, d := range des {
		out = append(out, d.Name())
	}
	return out
}

// InstallUnits writes strata's boot units into the OS tree at treeRoot
// (distro.SystemdUnitDir) and enables them as their [Install] sections
// say, with symlinks in TARGET.{wants,requires} beside them
// (a vendor enablement that needs no systemctl and survives the /etc
// merge):
//
//   - strata-esp-sync.service: `strata bootloader sync` at every boot;
//   - strata-boot-complete.service: `strata boot-complete` before
//     boot-complete.target (health checks, blessing, fallback rollback);
//   - strata-finalize.service: `strata finalize` at shutdown;
//   - strata-agent.service: the update agent, on nodes with its configuration;
//   - strata-provision-kargs.service: on the first boot, the provisioning
//     config's kernel arguments and one reboot;
//   - strata-sysext.service: `strata sysext link` before
//     systemd-sysext.service (followed extensions, docs/sysext.md).
//
// It also enables the tree's own units of vendorUnits that the tree
// ships (systemd-sysext.service, which Debian installs disabled), the
// same way.
//
// It also masks systemd's GPT auto-generator (maskedGenerators) in the
// tree's etc (compose calls it before /etc moves to /usr/etc): the generator would set up
// an ESP automount of its own, which fails on a strata root (/boot is the
// sysroot's, bound by prepare-root) and adds nothing to the fstab line of
// image.FstabESP. The units run distro.StrataBinary, which the tree must
// provide. It is idempotent.
func InstallUnits(treeRoot string) error {
	if err := maskGenerators(treeRoot); err != nil {
		return err
	}
	dir := filepath.Join(treeRoot, distro.SystemdUnitDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("installing units: %w", err)
	}
	if err := enableVendorUnits(dir); err != nil {
		return err
	}
	for _, name := range Units() {
		tmpl, err := units.ReadFile("units/" + name)
		if err != nil {
			return fmt.Errorf("internal error: reading embedded unit %s: %w", name, err)
		}
		data := []byte(unitVars.Replace(string(tmpl)))
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return fmt.Errorf("installing unit %s: %w", name, err)
		}
		for _, link := range installLinks(string(data)) {
			ldir := filepath.Join(dir, link)
			if err := os.MkdirAll(ldir, 0o755); err != nil {
				return fmt.Errorf("enabling unit %s: %w", name, err)
			}
			p := filepath.Join(ldir, name)
			os.Remove(p)
			if err := os.Symlink("../"+name, p); err != nil {
				return fmt.Errorf("enabling unit %s: %w", name, err)
			}
		}
	}
	return nil
}

// vendorUnits are units of the OS tree that InstallUnits enables when
// the tree has them, with their [Install] targets: systemd-sysext.service
// (Debian 12: package systemd) merges the system extensions at boot.
var vendorUnits = map[string]string{"systemd-sysext.service": "sysinit.target.wants"}

// enableVendorUnits links the vendorUnits present in the unit directory
// dir into their targets' .wants directories.
func enableVendorUnits(dir string) error {
	for name, wants := range vendorUnits {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			continue
		}
		ldir := filepath.Join(dir, wants)
		if err := os.MkdirAll(ldir, 0o755); err != nil {
			return fmt.Errorf("enabling unit %s: %w", name, err)
		}
		p := filepath.Join(ldir, name)
		os.Remove(p)
		if err := os.Symlink("../"+name, p); err != nil {
			return fmt.Errorf("enabling unit %s: %w", name, err)
		}
	}
	return nil
}

// maskedGenerators are the systemd generators InstallUnits masks.
var maskedGenerators = []string{"systemd-gpt-auto-generator"}

// maskGenerators links maskedGenerators to /dev/null in the tree's
// distro.SystemdGeneratorOverrideDir (systemd.generator(7): a same-named file in
// /etc overrides /usr/lib's).
func maskGenerators(treeRoot string) error {
	dir := filepath.Join(treeRoot, distro.SystemdGeneratorOverrideDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("masking generators: %w", err)
	}
	for _, g := range maskedGenerators {
		p := filepath.Join(dir, g)
		os.Remove(p)
		if err := os.Symlink("/dev/null", p); err != nil {
			return fmt.Errorf("masking generator %s: %w", g, err)
		}
	}
	return nil
}

// installLinks returns the TARGET.wants and TARGET.requires directories
// of a unit's [Install] section.
func installLinks(unit string) []string {
	var out []string
	inInstall := false
	for _, line := range strings.Split(unit, "\n") {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "[") {
			inInstall = line == "[Install]"
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !inInstall || !ok {
			continue
		}
		suffix := map[string]string{"WantedBy": ".wants", "RequiredBy": ".requires"}[k]
		if suffix == "" {
			continue
		}
		for _, t := range strings.Fields(v) {
			out = append(out, t+suffix)
		}
	}
	return out
}
