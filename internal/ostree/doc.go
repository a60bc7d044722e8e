// Package ostree is the OSTree object model: checksums, object types and
// loose paths, content-object headers (bare stream, archive .filez,
// bare-user user.ostreemeta), dirtree, dirmeta and commit objects, commit
// metadata and ref names, all byte-compatible with libostree 2022.7
// (docs/formats/).
//
// It is pure: it encodes and decodes bytes and computes checksums, and never
// touches a filesystem (package repo does). Fields that libostree stores
// big-endian are swapped here, so callers see native values. Layer L1.
package ostree
