// Package delta reads, writes and applies OSTree static deltas
// (docs/formats/static-deltas.md): the superblock and parts that carry the
// objects a commit needs beyond an older commit (or beyond nothing, a "scratch"
// delta), in libostree's layout so that ostree clients use strata's deltas and
// strata uses theirs.
//
// Generation splices new objects whole into xz-compressed parts, or, for a
// file that replaces one at the same path (or at a path that differs in
// version numbers only), a bsdiff patch (package bsdiff) when the patch
// copies most of the file; objects at least Options.MinFallbackSize long
// become fallback objects that a client fetches loose.
//
// Application streams each part: the download, the decompression into an
// anonymous spool file and the object writes overlap, and memory holds the
// part's tables and operations, not its raw bytes, whatever its size. It
// verifies every part against the size and checksum in its header before
// any operation runs, and every object it produces against the checksum the
// superblock names before it is stored (repo.Txn verifies).
//
// It does not generate rollsum operations (it applies them), and does not
// read or write signed superblocks.
//
// Layer: L2, beside package repo, whose repositories it reads and writes.
package delta
