// Package boot is a node's boot policy, above the ESP mechanism of package
// bootloader (as snapd's boot/ sits over bootloader/; docs/boot.md):
//
//   - ESP is the sysroot.Bootloader of a node: after every switch it turns
//     the sysroot's committed deployment list, with the title, options and
//     kernel files of each deployment's BLS entry (sysroot.ReadBootEntries),
//     into ESP entries and hands them to bootloader.Sync;
//   - BootComplete is what `strata boot-complete` does on a booted node:
//     the health checks, blessing the booted entry, and the rollback that
//     makes the sysroot agree with a firmware fallback;
//   - CheckESPMount refuses an ESP directory that is not a mounted FAT
//     filesystem, so that nothing is written into the root filesystem;
//   - InstallUnits writes the systemd units that run these at boot and at
//     shutdown into an OS tree (compose's post-processing calls it).
//
// What it does not do: write ESP files or count boots itself (package
// bootloader does), parse the sysroot's entries (package sysroot does),
// build disk images (package image), or mount the ESP (the fstab line that
// image writes does).
//
// Layer L2, above the mechanisms it drives: imports sysroot, bootloader,
// distro and errdefs. It is policy, but image (L2) imports it to give the
// sysroot it builds an ESP, so it cannot sit in L3 beside compose (which
// imports it to install the units).
package boot
