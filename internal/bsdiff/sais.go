package bsdiff

import (
	"encoding/binary"
	"index/suffixarray"
	"syscall"
	"unsafe"
)

// mapMin is the length of old from which its suffix array is kept in
// anonymous memory instead of Go memory (see sortedSuffixes); below it a
// mapping per file would cost more system calls than it saves.
const mapMin = 1 << 20

// sortedSuffixes returns the suffixes of b (with the empty one first) in
// sorted order, as Diff searches them. The standard library's
// index/suffixarray sorts them (SA-IS, linear time) but keeps the array to
// itself; its Write serializes it, and saReader decodes that stream as it
// is written, so the array is never held twice. The stream, as Index.Read
// reads it: the data's length as a varint in 10 bytes, the data, then
// chunks, each its own length (these 10 bytes included) as a varint in 10
// bytes followed by the suffixes' offsets as uvarints.
//
// The array of a file of mapMin bytes or more lives in anonymous memory
// mapped for it, and release unmaps it. Sorting holds two arrays at once
// (the index's and this one, 8 bytes per byte of b); as Go memory both
// would count in the heap whose growth paces the garbage collector, which
// lets the heap grow to twice its live size before a collection (for
// amdgpu.ko, 19 MB, the two arrays are 150 MiB). Mapped, this array does
// not raise the heap's target, and its pages go back to the system as soon
// as the search is done.
func sortedSuffixes(b []byte) (sa []int32, release func()) {
	sa, release = allocSuffixes(len(b) + 1)
	sa = append(sa[:0], int32(len(b)))
	w := &saReader{sa: sa}
	// The writer never fails, so neither does Write.
	_ = suffixarray.New(b).Write(w)
	if len(w.sa) != len(b)+1 || &w.sa[0] != &sa[0] || w.bad {
		release()
		panic("bsdiff: unexpected index/suffixarray serialization")
	}
	return w.sa, release
}

// allocSuffixes returns an empty array with room for n suffixes, mapped
// when n is at least mapMin (in Go memory if the mapping fails), and the
// function that frees it.
func allocSuffixes(n int) ([]int32, func()) {
	if n >= mapMin {
		mem, err := syscall.Mmap(-1, 0, 4*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
		if err == nil {
			sa := unsafe.Slice((*int32)(unsafe.Pointer(&mem[0])), n)
			return sa[:0], func() {
				if err := syscall.Munmap(mem); err != nil {
					panic("bsdiff: unmapping a suffix array: " + err.Error())
				}
			}
		}
	}
	return make([]int32, 0, n), func() {}
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
