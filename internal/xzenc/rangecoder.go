package xzenc

import "math"

// prob is an adaptive bit probability: the chance, out of 1<<probBits, that
// the next bit coded with it is 0 (docs/formats/xz.md, "Range coder").
type prob uint16

const (
	probBits  = 11
	probInit  = prob(1 << (probBits - 1))
	moveBits  = 5
	topValue  = 1 << 24
	priceBits = 4 // prices are in 1/16 of a bit
)

// rangeEncoder is LZMA's binary arithmetic coder. Its output is the bytes of
// one LZMA2 chunk's compressed data.
type rangeEncoder struct {
	low       uint64
	rng       uint32
	cache     byte
	cacheSize int
	out       []byte
}

func (e *rangeEncoder) reset() {
	e.low = 0
	e.rng = 0xFFFFFFFF
	e.cache = 0
	e.cacheSize = 1
	e.out = e.out[:0]
}

// pending is how many bytes the chunk has once flushed.
func (e *rangeEncoder) pending() int {
	return len(e.out) + e.cacheSize + 4
}

// shiftLow moves the top byte of low out, holding back bytes 0xFF that a
// later carry may still change.
func (e *rangeEncoder) shiftLow() {
	if uint32(e.low) < 0xFF000000 || e.low >= 1<<32 {
		carry := byte(e.low >> 32)
		b := e.cache
		for ; e.cacheSize > 0; e.cacheSize-- {
			e.out = append(e.out, b+carry)
			b = 0xFF
		}
		e.cache = byte(e.low >> 24)
	}
	e.cacheSize++
	e.low = (e.low & 0x00FFFFFF) << 8
}

func (e *rangeEncoder) flush() {
	for range 5 {
		e.shiftLow()
	}
}

func (e *rangeEncoder) bit(p *prob, b uint32) {
	bound := (e.rng >> probBits) * uint32(*p)
	if b == 0 {
		e.rng = bound
		*p += ((1 << probBits) - *p) >> moveBits
	} else {
		e.low += uint64(bound)
		e.rng -= bound
		*p -= *p >> moveBits
	}
	for e.rng < topValue {
		e.rng <<= 8
		e.shiftLow()
	}
}

// direct codes the low n bits of v, high bit first, at probability one half.
func (e *rangeEncoder) direct(v uint32, n int) {
	for i := n - 1; i >= 0; i-- {
		e.rng >>= 1
		e.low += uint64(e.rng & (0 - (v>>uint(i))&1))
		for e.rng < topValue {
			e.rng <<= 8
			e.shiftLow()
		}
	}
}

// tree codes the low n bits of v, high bit first, through a binary tree of
// probabilities indexed from 1.
func (e *rangeEncoder) tree(probs []prob, n int, v uint32) {
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		b := (v >> uint(i)) & 1
		e.bit(&probs[m], b)
		m = m<<1 | b
	}
}

// reverseTree codes the low n bits of v, low bit first.
func (e *rangeEncoder) reverseTree(probs []prob, n int, v uint32) {
	m := uint32(1)
	for range n {
		b := v & 1
		v >>= 1
		e.bit(&probs[m], b)
		m = m<<1 | b
	}
}

// bitPrices[p>>priceShift] is the cost of coding a bit whose probability is
// p/2048: -log2(p/2048) in 1/16 bits.
var bitPrices = func() (t [1 << (probBits - priceShift)]uint32) {
	for i := range t {
		p := (float64(i)*(1<<priceShift) + (1 << (priceShift - 1))) / (1 << probBits)
		t[i] = uint32(math.Round(-math.Log2(p) * (1 << priceBits)))
	}
	return t
}()

const priceShift = 4

func price0(p prob) uint32 { return bitPrices[p>>priceShift] }
func price1(p prob) uint32 { return bitPrices[((1<<probBits)-p)>>priceShift] }
func priceBit(p prob, b uint32) uint32 {
	if b == 0 {
		return price0(p)
	}
	return price1(p)
}

func treePrice(probs []prob, n int, v uint32) uint32 {
	var sum uint32
	m := uint32(1)
	for i := n - 1; i >= 0; i-- {
		b := (v >> uint(i)) & 1
		sum += priceBit(probs[m], b)
		m = m<<1 | b
	}
	return sum
}

func reverseTreePrice(probs []prob, n int, v uint32) uint32 {
	var sum uint32
	m := uint32(1)
	for range n {
		b := v & 1
		v >>= 1
		sum += priceBit(probs[m], b)
		m = m<<1 | b
	}
	return sum
}
