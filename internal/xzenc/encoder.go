package xzenc

import (
	"encoding/binary"
)

// LZMA2 chunk limits (docs/formats/xz.md, "LZMA2").
const (
	maxChunkUnpacked = 2 << 20
	maxChunkPacked   = 64 << 10
	maxStoredChunk   = 64 << 10
	// symMargin bounds the bytes one symbol adds to a chunk: a match codes
	// at most about 300 bits.
	symMargin = 64
)

// encoder turns the input into LZMA2 chunks.
type encoder struct {
	data    []byte
	niceLen int
	m       model
	rc      rangeEncoder
	mf      *bt4
	opt     []optNode

	pending []sym // the parse not yet coded
	next    int   // index into pending

	lastPos     int // position of lastMatches
	lastMatches []match
	trimmed     []match
}

func (e *encoder) prev(pos int) byte {
	if pos == 0 {
		return 0
	}
	return e.data[pos-1]
}

// code codes s at pos with the model, as a rep when its distance is one of
// the recent ones.
func (e *encoder) code(pos int, s sym) {
	m := &e.m
	d := e.data
	switch {
	case s.dist == litDist || (s.len == 1 && (s.dist != m.reps[0] || int(s.dist) >= pos)):
		var mb byte
		if m.state >= litStates {
			mb = d[pos-int(m.reps[0])-1]
		}
		m.encodeLiteral(&e.rc, pos, e.prev(pos), d[pos], mb)
		return
	case s.len == 1:
		m.encodeRep(&e.rc, pos, 0, 1)
		return
	}
	for r := range numReps {
		if m.reps[r] == s.dist {
			m.encodeRep(&e.rc, pos, r, s.len)
			return
		}
	}
	m.encodeMatch(&e.rc, pos, s.dist, s.len)
}

// lzma2 appends the LZMA2 chunks of the input and the end marker to out.
func (e *encoder) lzma2(out []byte) []byte {
	d := e.data
	pos := 0
	first := true      // the dictionary is to be reset
	needProps := true  // the next LZMA chunk carries the properties
	needReset := false // the next LZMA chunk resets the state
	for pos < len(d) {
		start := pos
		e.rc.reset()
		for pos < len(d) && pos-start <= maxChunkUnpacked-maxMatch && e.rc.pending()+symMargin <= maxChunkPacked {
			if e.next == len(e.pending) {
				e.parse(pos)
			}
			s := e.pending[e.next]
			e.next++
			e.code(pos, s)
			pos += s.len
		}
		e.rc.flush()
		unpacked := pos - start
		packed := len(e.rc.out)
		if packed >= unpacked {
			// Stored: the data goes into the dictionary as it is, and the
			// next LZMA chunk starts from a fresh state.
			for i := start; i < pos; i += maxStoredChunk {
				j := min(pos, i+maxStoredChunk)
				ctl := byte(0x02)
				if first {
					ctl = 0x01
					first = false
				}
				out = append(out, ctl, byte((j-i-1)>>8), byte(j-i-1))
				out = append(out, d[i:j]...)
			}
			e.m.reset()
			needReset = true
			continue
		}
		var ctl byte
		switch {
		case first:
			ctl = 0xE0
		case needProps:
			ctl = 0xC0
		case needReset:
			ctl = 0xA0
		default:
			ctl = 0x80
		}
		u, c := unpacked-1, packed-1
		out = append(out, ctl|byte(u>>16), byte(u>>8), byte(u), byte(c>>8), byte(c))
		if ctl >= 0xC0 {
			out = append(out, propsByte)
		}
		out = append(out, e.rc.out...)
		first, needProps, needReset = false, false, false
	}
	return append(out, 0x00)
}

// putUvarint appends x as an xz multibyte integer.
func putUvarint(b []byte, x uint64) []byte {
	return binary.AppendUvarint(b, x)
}
