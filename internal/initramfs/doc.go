// Package initramfs builds strata's initramfs: a newc cpio archive holding the
// static strata binary as /init (internal/prepareroot runs there), the device
// nodes and directories it needs, and the kernel modules that mounting the
// root filesystem takes, with their dependencies resolved in pure Go from the
// kernel's modules.dep, modules.softdep, modules.alias and modules.builtin
// (written by depmod when the kernel package is installed; this package does
// not run depmod).
//
// Archives are reproducible: the same inputs give the same bytes (entries
// sorted by path, uid/gid 0, one fixed mtime, inode numbers in entry order,
// and a compressor that runs on one goroutine). Options leave them
// uncompressed; BuildForTree and `strata initramfs` compress them with zstd,
// with a window the kernel's decoder accepts: a third of the size, which
// the boot loader reads from the ESP faster than it reads the whole
// archive, and no slower to unpack under TCG emulation than gzip was
// (docs/boot.md, docs/vm.md).
//
// Layer L2 (mechanisms).
package initramfs
