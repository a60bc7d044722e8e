// Package delta reads, writes and applies OSTree static deltas
// (docs/formats/static-deltas.md): the superblock and parts that carry the
// objects a commit needs beyond an older commit (or beyond nothing, a "scratch"
// delta), in libostree's layout so that ostree clients use strata's deltas and
// strata uses theirs.
//
// Generation splices new objects whole into xz-compressed parts; objects at least
// Options.MinFallbackSize long become fallback objects that a client fetches
// loose. Application verifies every object it produces against the checksum the
// superblock names before it is stored (repo.Txn verifies), and every part against
// the checksum and sizes in its header before it is decompressed.
//
// It does not generate bsdiff or rollsum operations (it applies both, bsdiff
// through package bsdiff), and does not read or write signed superblocks.
//
// Layer: L2, beside package repo, whose repositories it reads and writes.
package delta
