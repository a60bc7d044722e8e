// Package fsutil holds the filesystem primitives with a durability
// discipline: atomic replace (write, fsync, rename, fsync dir), syncfs,
// fast tree removal, xattr listing, the immutable attribute of directories,
// and a byte-counting writer. Every function takes explicit paths; nothing
// assumes "/".
// Layer L0: standard library, golang.org/x/sys and errdefs only.
package fsutil
