// Package compose turns a manifest (a YAML list of Debian packages plus a
// few knobs) into a bootable OSTree commit: mmdebstrap installs the packages
// into a temporary directory, PostProcess reshapes that root filesystem into
// the layout an OSTree system boots (/usr/etc, an empty /var recreated by
// systemd-tmpfiles, the kernel under /usr/lib/modules/KVER), and the tree is
// committed to the manifest's ref with the package list in the commit
// metadata, signed when a key is given.
//
// Derive makes the other kind of commit compose knows: one derived on a
// node from a base commit by installing and removing packages with apt and
// dpkg in an overlay of the base checkout (package layering,
// docs/layering.md).
//
// It does not deploy, build disk images or generate its own initramfs (the
// initramfs step is an InitramfsFunc so that one can be swapped in later).
// The user-facing format is documented in docs/compose.md.
//
// Layer L3: it imports repo, ostree, gvariant, image, initramfs, fsutil and
// errdefs, and no other service package.
package compose
