package distro

import "strings"

// StrataBinary is where a strata OS tree carries the strata binary; the
// boot units run it and the initramfs is built around it.
const StrataBinary = "/usr/bin/strata"

// ESPMountPoint is where a booted node mounts its EFI system partition
// (an automount from the fstab line the image writes).
const ESPMountPoint = "/boot/efi"

// ESPMountUnit returns the systemd unit name stem of ESPMountPoint
// ("boot-efi" for /boot/efi, as systemd-escape --path makes it): the boot
// units order themselves after ESPMountUnit()+".automount".
func ESPMountUnit() string {
	return strings.ReplaceAll(strings.Trim(ESPMountPoint, "/"), "/", "-")
}

// HealthDirs are the directories of boot health checks on a node: the
// administrator's, then the OS's (like greenboot's required.d). A check in
// the first shadows one of the same name in the second.
var HealthDirs = []string{"/etc/strata/health.d", "/usr/lib/strata/health.d"}

// SystemdUnitDir is where a tree's vendor systemd units live (strata's boot
// units are installed there and enabled with links beside them).
const SystemdUnitDir = "/usr/lib/systemd/system"

// SystemdGeneratorOverrideDir is where an administrator's (or the OS
// tree's /etc) generator overrides live: a same-named file there masks a
// generator of /usr/lib (systemd.generator(7)).
const SystemdGeneratorOverrideDir = "/etc/systemd/system-generators"

// SystemdBootEFI is Debian's systemd-boot EFI binary (package
// systemd-boot-efi), which image building installs on the ESP.
const SystemdBootEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"

// Host tools run by image building and compose, with the Debian package
// that provides each.
const (
	SfdiskCmd     = "sfdisk"     // fdisk
	MkfsExt4Cmd   = "mkfs.ext4"  // e2fsprogs
	MkfsVfatCmd   = "mkfs.vfat"  // dosfstools
	McopyCmd      = "mcopy"      // mtools
	MmdebstrapCmd = "mmdebstrap" // mmdebstrap
	ChrootCmd     = "chroot"     // coreutils
)
