// Package image builds bootable disk images of a commit (docs/boot.md,
// "Image").
//
// Build makes a raw GPT disk without loop devices or mounts: a sysroot is
// assembled in a temporary directory (the commit copied into its
// repository, deployed once), the ESP is staged next to it (systemd-boot
// at the removable-media path, the deployment's entry and kernel projected
// by boot.ESP), and both are written into their partitions with sfdisk,
// mkfs.ext4 -d, mkfs.vfat and mtools (docs/vm.md). The deployment's /etc/fstab gets the
// line that mounts the ESP on the booted node (FstabESP).
//
// What it does not do: run anything on a booted node. The ESP projection,
// boot-complete and the boot units are package boot's.
//
// Layer L2: imports boot, sysroot, bootloader, repo, ostree, distro, fsutil,
// errdefs.
package image
