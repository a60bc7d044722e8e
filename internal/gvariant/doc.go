// Package gvariant encodes and decodes the GVariant serialization format
// (normal form, little-endian) that OSTree uses for its objects, summaries and
// detached metadata: basic types, strings, variants, maybes, arrays, tuples and
// dict entries, with framing offsets of every width.
//
// It does not implement the GVariant text format or big-endian data, and it
// does not byte-swap: fields that libostree stores big-endian are swapped by
// package ostree. Layer L0: pure, standard library and errdefs only.
//
// Example (a dirmeta, docs/formats/gvariant.md):
//
//	t := gvariant.MustType("(uuua(ayay))")
//	b, err := gvariant.Marshal(t, gvariant.Tuple{uid, gid, mode, []any{}})
package gvariant
