package bsdiff

import (
	"encoding/binary"
	"index/suffixarray"
)

// sortedSuffixes returns the suffixes of b (with the empty one first) in
// sorted order, as Diff searches them. The standard library's
// index/suffixarray sorts them (SA-IS, linear time) but keeps the array to
// itself; its Write serializes it, and saReader decodes that stream as it
// is written, so the array is never held twice. The stream, as Index.Read
// reads it: the data's length as a varint in 10 bytes, the data, then
// chunks, each its own length (these 10 bytes included) as a varint in 10
// bytes followed by the suffixes' offsets as uvarints.
func sortedSuffixes(b []byte) []int32 {
	sa := make([]int32, 1, len(b)+1)
	sa[0] = int32(len(b))
	w := &saReader{sa: sa}
	// The writer never fails, so neither does Write.
	_ = suffixarray.New(b).Write(w)
	if len(w.sa) != len(b)+1 || w.bad {
		panic("bsdiff: unexpected index/suffixarray serialization")
	}
	return w.sa
}

// saReader decodes index/suffixarray's serialization (see sortedSuffixes)
// from successive writes, across any split of the stream.
type saReader struct {
	sa   []int32
	hdr  []byte // a 10-byte varint being gathered
	skip int64  // data bytes still to skip
	left int64  // bytes of the current chunk's offsets still to come
	x    uint64 // an offset being gathered
	sh   uint
	init bool // the data's length was read
	bad  bool
}

func (s *saReader) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		switch {
		case s.skip > 0:
			k := min(int64(len(p)), s.skip)
			s.skip -= k
			p = p[k:]
		case s.left > 0:
			c := p[0]
			p = p[1:]
			s.left--
			s.x |= uint64(c&0x7f) << s.sh
			s.sh += 7
			if c < 0x80 {
				s.sa = append(s.sa, int32(s.x))
				s.x, s.sh = 0, 0
			}
		default:
			k := min(len(p), binary.MaxVarintLen64-len(s.hdr))
			s.hdr = append(s.hdr, p[:k]...)
			p = p[k:]
			if len(s.hdr) < binary.MaxVarintLen64 {
				continue
			}
			v, m := binary.Varint(s.hdr)
			s.hdr = s.hdr[:0]
			if m <= 0 || v < 0 {
				s.bad = true
				return n, nil
			}
			if !s.init {
				s.init, s.skip = true, v
			} else if s.left = v - binary.MaxVarintLen64; s.left < 0 {
				s.bad = true
				return n, nil
			}
		}
	}
	return n, nil
}
