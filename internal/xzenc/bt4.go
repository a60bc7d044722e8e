package xzenc

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"syscall"
	"unsafe"
)

// match is a match the finder reports: its length and dist (distance - 1).
type match struct {
	len  int
	dist uint32
}

// bt4 is a binary-tree match finder over the whole input. Positions with
// the same first four bytes (by hash) form a binary search tree ordered
// by the bytes that follow, newest at the root; inserting a position walks
// its tree once, which both finds the longest matches at every length
// and re-roots the tree at the new position. Two small hash tables of the
// last position of each 2- and 3-byte prefix find short, near matches.
//
// Memory: 8 bytes per position of the window (min(dictionary, input)) for
// the tree, 4 bytes per entry of the 4-byte hash (half the window rounded up
// to a power of two, 64 Ki to 16 Mi entries) and 512 KiB for the short
// hashes: about 80 MiB for an 8 MiB dictionary.
type bt4 struct {
	data     []byte
	dictSize uint32
	cycSize  uint32 // positions the tree keeps: min(dictSize+1, len(data))
	cycPos   uint32 // pos modulo cycSize
	depth    int
	niceLen  int
	hashBits uint
	hash2    []uint32 // last position+1 of each 2-byte prefix
	hash3    []uint32
	hash4    []uint32
	son      []uint32 // left and right child (position+1) of each position
	pos      int      // the next position to insert
	out      []match
	tables   *tables
}

const (
	hash2Size = 1 << 16
	hash3Bits = 16
)

// tables are the match finder's arrays. They live in anonymous memory
// mapped for the one input and unmapped after it: a part's 80 MiB go back
// to the system at once, and do not count in the heap whose growth paces
// the garbage collector (as Go memory they would let the heap, and the
// process, grow to twice the live size before a collection).
type tables struct {
	mem []byte
}

func mapTables(n int) (*tables, []uint32, error) {
	mem, err := syscall.Mmap(-1, 0, 4*n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANONYMOUS)
	if err != nil {
		return nil, nil, fmt.Errorf("xzenc: mapping %d bytes for the match finder: %w", 4*n, err)
	}
	return &tables{mem}, unsafe.Slice((*uint32)(unsafe.Pointer(&mem[0])), n), nil
}

func newBT4(data []byte, dictSize, niceLen, depth int) (*bt4, error) {
	win := max(min(dictSize+1, len(data)), 1)
	hs := min(dictSize, len(data))
	hb := uint(bits.Len(uint(max(hs-1, 1)))) - 1
	hb = min(max(hb, 16), 24)
	// The mapping is zeroed, as the hashes need; the tree would not: a
	// position's children are written when it is inserted, before any walk
	// reaches it.
	const h3 = hash2Size + 1<<hash3Bits
	h4 := h3 + 1<<hb
	t, a, err := mapTables(h4 + 2*win)
	if err != nil {
		return nil, err
	}
	return &bt4{
		data:     data,
		dictSize: uint32(dictSize),
		cycSize:  uint32(win),
		depth:    depth,
		niceLen:  niceLen,
		hashBits: hb,
		hash2:    a[:hash2Size:hash2Size],
		hash3:    a[hash2Size:h3:h3],
		hash4:    a[h3:h4:h4],
		son:      a[h4:],
		out:      make([]match, 0, maxMatch+1),
		tables:   t,
	}, nil
}

// release unmaps the finder's arrays; the finder is unusable after.
func (f *bt4) release() {
	t := f.tables
	*f = bt4{}
	if err := syscall.Munmap(t.mem); err != nil {
		panic("xzenc: unmapping the match finder: " + err.Error())
	}
}

// matchLen is the length of the common prefix of data[a:] and data[b:], at
// most limit.
func matchLen(data []byte, a, b, limit int) int {
	x := data[a : a+limit]
	y := data[b : b+limit]
	n := 0
	for len(x) >= 8 && len(y) >= 8 {
		if v := binary.LittleEndian.Uint64(x) ^ binary.LittleEndian.Uint64(y); v != 0 {
			return n + bits.TrailingZeros64(v)>>3
		}
		x, y = x[8:], y[8:]
		n += 8
	}
	y = y[:len(x)]
	for i := range x {
		if x[i] != y[i] {
			return n + i
		}
	}
	return n + len(x)
}

// find inserts the next position and returns its matches, by increasing
// length; a match of niceLen is extended as far as maxMatch. The slice is
// valid until the next call.
func (f *bt4) find() []match {
	p := f.pos
	f.out = f.out[:0]
	avail := len(f.data) - p
	if avail < 4 {
		f.advance()
		return f.out
	}
	limit := min(f.niceLen, avail)
	d := f.data
	v := binary.LittleEndian.Uint32(d[p:])
	h2 := v & 0xFFFF
	h3 := ((v & 0xFFFFFF) * 0x9E3779B1) >> (32 - hash3Bits)
	h4 := (v * 0x9E3779B1) >> (32 - f.hashBits)
	c2, c3, c4 := f.hash2[h2], f.hash3[h3], f.hash4[h4]
	me := uint32(p + 1)
	f.hash2[h2], f.hash3[h3], f.hash4[h4] = me, me, me

	best := 1
	var last uint32
	for _, c := range [2]uint32{c2, c3} {
		if c == 0 || c == last {
			continue
		}
		delta := me - c
		if delta > f.dictSize {
			continue
		}
		last = c
		q := int(c) - 1
		if d[q] != d[p] {
			continue
		}
		if l := matchLen(d, p, q, limit); l > best {
			best = l
			f.out = append(f.out, match{l, delta - 1})
		}
	}
	if best >= limit {
		f.insert(p, c4, limit, best, false)
	} else {
		f.insert(p, c4, limit, best, true)
	}
	if n := len(f.out); n > 0 && f.out[n-1].len == f.niceLen && avail > f.niceLen {
		m := &f.out[n-1]
		m.len += matchLen(d, p+m.len, p+m.len-int(m.dist)-1, min(avail, maxMatch)-m.len)
	}
	f.advance()
	return f.out
}

// skip inserts the next position without reporting its matches.
func (f *bt4) skip() {
	p := f.pos
	avail := len(f.data) - p
	if avail < 4 {
		f.advance()
		return
	}
	v := binary.LittleEndian.Uint32(f.data[p:])
	h2 := v & 0xFFFF
	h3 := ((v & 0xFFFFFF) * 0x9E3779B1) >> (32 - hash3Bits)
	h4 := (v * 0x9E3779B1) >> (32 - f.hashBits)
	c4 := f.hash4[h4]
	me := uint32(p + 1)
	f.hash2[h2], f.hash3[h3], f.hash4[h4] = me, me, me
	f.insert(p, c4, min(f.niceLen, avail), 0, false)
	f.advance()
}

func (f *bt4) advance() {
	f.pos++
	f.cycPos++
	if f.cycPos == f.cycSize {
		f.cycPos = 0
	}
}

// insert makes p the root of the tree that held cand (position+1 of the
// previous root) and, if report, appends the matches longer than best
// that the walk meets.
func (f *bt4) insert(p int, cand uint32, limit, best int, report bool) {
	d := f.data
	son := f.son
	me := uint32(p + 1)
	cycPos, cycSize := f.cycPos, min(f.cycSize, f.dictSize+1)
	left := 2 * cycPos // where the next node smaller than p goes
	right := left + 1  // where the next node larger than p goes
	lenL, lenR := 0, 0
	for depth := f.depth; cand != 0 && depth > 0; depth-- {
		delta := me - cand
		if delta >= cycSize {
			break
		}
		q := int(cand) - 1
		node := cycPos - delta
		if delta > cycPos {
			node += f.cycSize
		}
		node *= 2
		// The node shares min(lenL, lenR) bytes with p: it lies between
		// the nodes those lengths are of.
		l := min(lenL, lenR)
		if l+8 <= limit {
			// Most nodes differ within 8 bytes: compare those inline.
			if v := binary.LittleEndian.Uint64(d[p+l:]) ^ binary.LittleEndian.Uint64(d[q+l:]); v != 0 {
				l += bits.TrailingZeros64(v) >> 3
			} else {
				l += 8 + matchLen(d, p+l+8, q+l+8, limit-l-8)
			}
		} else {
			l += matchLen(d, p+l, q+l, limit-l)
		}
		if l > best {
			best = l
			if report {
				f.out = append(f.out, match{l, delta - 1})
			}
		}
		if l == limit {
			son[left] = son[node]
			son[right] = son[node+1]
			return
		}
		if d[q+l] < d[p+l] {
			son[left] = cand
			left = node + 1
			cand = son[left]
			lenL = l
		} else {
			son[right] = cand
			right = node
			cand = son[right]
			lenR = l
		}
	}
	son[left] = 0
	son[right] = 0
}
