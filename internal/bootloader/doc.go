// Package bootloader projects a sysroot's committed deployment list onto
// an EFI system partition for systemd-boot, with automatic boot
// assessment (docs/boot.md).
//
// The ESP holds one Boot Loader Specification type #1 entry per
// deployment, loader/entries/strata-ORD-OS-ID[+LEFT[-DONE]].conf, and the
// kernels and initramfs images they name under strata/OS-BOOTCSUM/. ID is
// a hash of the entry's text (which names its deployment in a comment), so
// an entry is never rewritten in place; ORD only grows, and systemd-boot
// sorts entries without a sort-key by file name, newest version first, so
// the entry with the largest ORD is the default. Sync makes the ESP match
// a list with renames and new files only, in an order where a power loss
// at any instant leaves the old or the new default as firmware's choice,
// its files complete. FirmwareChoice computes that choice as systemd-boot
// 252 does, so tests can ask it after every step.
//
// Boot counting: a new default that has not booted gets the suffix +N
// (Options.Tries); systemd-boot decrements it at each attempt and sorts an
// entry with no tries left last. Bless removes the suffix of a good boot,
// MarkBad sets the tries left to 0. RunChecks runs health-check programs.
//
// What it does not do: read a sysroot (the caller converts its
// deployments into Entry values), install systemd-boot itself, touch EFI
// variables, or mount the ESP.
//
// Layer L2: imports fsutil and errdefs.
package bootloader
