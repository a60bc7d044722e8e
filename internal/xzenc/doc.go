// Package xzenc writes .xz streams (docs/formats/xz.md) whose LZMA2 data
// is as small as liblzma's preset 6 makes it: a binary-tree (bt4) match
// finder over an 8 MiB dictionary and an optimal parser that prices every
// literal, match and recent-distance match in the state the path before
// it leaves, as LZMA's "normal" mode does. The input is whole in memory,
// as static-delta parts are; decoding is left to the xz libraries.
//
// Layer: L0, pure over byte slices.
package xzenc
