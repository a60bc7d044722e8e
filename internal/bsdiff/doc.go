// Package bsdiff applies binary patches in the uncompressed bsdiff stream
// format libostree puts into static-delta parts (docs/formats/static-deltas.md):
// a sequence of control triples (three 8-byte sign-magnitude little-endian
// integers: bytes to add from the old file, bytes to copy from the patch,
// distance to seek in the old file), each followed by those bytes, until the
// new file is complete. There is no header and no compression: the part is
// compressed as a whole.
//
// Diff writes patches of that format with bsdiff's search: a suffix array
// of the old file (sorted by index/suffixarray's SA-IS) gives,
// for each place in the new file, the longest match in the old one, so
// that content that moved as well as content changed in place becomes
// mostly zero diff bytes. Patch applies them, and libostree's bspatch
// does too.
//
// Layer: L0, pure over byte slices.
package bsdiff
