// Package image builds bootable disk images of a commit and wires a
// sysroot to its EFI system partition (docs/boot.md).
//
// Build makes a raw GPT disk without loop devices or mounts: a sysroot is
// assembled in a temporary directory (the commit copied into its
// repository, deployed once), the ESP is staged next to it (systemd-boot
// at the removable-media path, the deployment's entry and kernel written
// by package bootloader), and both are written into their partitions with
// sfdisk, mkfs.ext4 -d, mkfs.vfat and mtools (docs/vm.md).
//
// ESP is the sysroot.Bootloader that projects a sysroot's committed
// deployment list onto an ESP directory (bootloader.Sync), reading the
// sysroot's own BLS entries for the kernel, initramfs and options of each
// deployment. BootComplete is what `strata boot-complete` does on a
// booted node: health checks, blessing the booted entry, and the rollback
// that makes the sysroot agree with a firmware fallback.
//
// InstallUnits writes the systemd units that run these at boot and
// shutdown into an OS tree (compose's post-processing calls it).
//
// Layer L2: imports sysroot, bootloader, repo, ostree, fsutil, errdefs.
package image
