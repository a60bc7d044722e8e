// Package xzenc writes .xz streams (docs/formats/xz.md) whose LZMA2 data
// is as small as liblzma's preset 6 makes it: a binary-tree (bt4) match
// finder over an 8 MiB dictionary and an optimal parser that prices every
// literal, match and recent-distance match in the state the path before
// it leaves, as LZMA's "normal" mode does. The input is whole in memory,
// as static-delta parts are; decoding is left to the xz libraries.
//
// Memory: about 8 bytes per byte of min(dictionary, input) and a hash
// table, 80 MiB at most with the default 8 MiB dictionary, mapped from the
// system for one input and unmapped after it (see Encode).
//
// Layer: L0, over byte slices.
package xzenc
