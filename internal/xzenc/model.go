package xzenc

import "math/bits"

// LZMA's model, as xz preset 6 sets it: lc=3 literal context bits, lp=0,
// pb=2 position bits (docs/formats/xz.md, "LZMA").
const (
	lc         = 3
	lp         = 0
	pb         = 2
	pbMask     = 1<<pb - 1
	propsByte  = (pb*5+lp)*9 + lc
	numStates  = 12
	litStates  = 7 // states below this follow a literal
	minMatch   = 2
	maxMatch   = 273
	numReps    = 4
	lenSyms    = maxMatch - minMatch + 1
	lowSyms    = 8
	midSyms    = 8
	lenStates  = 4
	slotBits   = 6
	startModel = 4   // first distance slot with footer bits
	endModel   = 14  // first distance slot whose footer is direct bits
	fullDists  = 128 // distances below this are priced exactly
	alignBits  = 4
	alignSize  = 1 << alignBits
	litDist    = ^uint32(0) // the dist of a literal symbol
	infinity   = 1 << 30
)

func litNext(s uint32) uint32 {
	switch {
	case s < 4:
		return 0
	case s < 10:
		return s - 3
	}
	return s - 6
}

func matchNext(s uint32) uint32 {
	if s < litStates {
		return 7
	}
	return 10
}

func repNext(s uint32) uint32 {
	if s < litStates {
		return 8
	}
	return 11
}

func shortRepNext(s uint32) uint32 {
	if s < litStates {
		return 9
	}
	return 11
}

// distSlot is the slot of dist (distance - 1): its two top bits.
func distSlot(dist uint32) uint32 {
	if dist < startModel {
		return dist
	}
	n := uint32(bits.Len32(dist)) - 1
	return n<<1 | (dist>>(n-1))&1
}

func lenState(l int) int { return min(l-minMatch, lenStates-1) }

// lenCoder codes match lengths minus 2: 8 low, 8 mid and 256 high symbols,
// the low and mid ones per position state.
type lenCoder struct {
	choice, choice2 prob
	low             [1 << pb][lowSyms]prob
	mid             [1 << pb][midSyms]prob
	high            [256]prob
	prices          [1 << pb][lenSyms]uint32
}

func (c *lenCoder) reset() {
	c.choice, c.choice2 = probInit, probInit
	for ps := range c.low {
		for i := range c.low[ps] {
			c.low[ps][i], c.mid[ps][i] = probInit, probInit
		}
	}
	for i := range c.high {
		c.high[i] = probInit
	}
}

func (c *lenCoder) encode(e *rangeEncoder, l uint32, ps uint32) {
	switch {
	case l < lowSyms:
		e.bit(&c.choice, 0)
		e.tree(c.low[ps][:], 3, l)
	case l < lowSyms+midSyms:
		e.bit(&c.choice, 1)
		e.bit(&c.choice2, 0)
		e.tree(c.mid[ps][:], 3, l-lowSyms)
	default:
		e.bit(&c.choice, 1)
		e.bit(&c.choice2, 1)
		e.tree(c.high[:], 8, l-lowSyms-midSyms)
	}
}

// updatePrices fills the price of every length for every position state.
func (c *lenCoder) updatePrices() {
	a0, a1 := price0(c.choice), price1(c.choice)
	b0, b1 := a1+price0(c.choice2), a1+price1(c.choice2)
	var high [256]uint32
	for i := range high {
		high[i] = b1 + treePrice(c.high[:], 8, uint32(i))
	}
	for ps := range c.prices {
		p := &c.prices[ps]
		for i := range lowSyms {
			p[i] = a0 + treePrice(c.low[ps][:], 3, uint32(i))
			p[lowSyms+i] = b0 + treePrice(c.mid[ps][:], 3, uint32(i))
		}
		copy(p[lowSyms+midSyms:], high[:lenSyms-lowSyms-midSyms])
	}
}

// model is the adaptive state of an LZMA encoder: the probabilities, the
// state machine, the four most recent distances and the prices derived
// from the probabilities.
type model struct {
	state      uint32
	reps       [numReps]uint32
	isMatch    [numStates][1 << pb]prob
	isRep      [numStates]prob
	isRepG0    [numStates]prob
	isRepG1    [numStates]prob
	isRepG2    [numStates]prob
	isRep0Long [numStates][1 << pb]prob
	lit        [0x300 << (lc + lp)]prob
	slot       [lenStates][1 << slotBits]prob
	special    [fullDists + 1]prob
	align      [alignSize]prob
	matchLen   lenCoder
	repLen     lenCoder

	slotPrices  [lenStates][1 << slotBits]uint32
	distPrices  [lenStates][fullDists]uint32
	alignPrices [alignSize]uint32
	// symbols coded since the prices were last brought up to date
	lenCount, distCount, alignCount int
}

func fill(ps []prob) {
	for i := range ps {
		ps[i] = probInit
	}
}

// reset starts the model afresh, as an LZMA2 state reset does.
func (m *model) reset() {
	m.state = 0
	m.reps = [numReps]uint32{}
	for s := range numStates {
		fill(m.isMatch[s][:])
		fill(m.isRep0Long[s][:])
	}
	fill(m.isRep[:])
	fill(m.isRepG0[:])
	fill(m.isRepG1[:])
	fill(m.isRepG2[:])
	fill(m.lit[:])
	for s := range m.slot {
		fill(m.slot[s][:])
	}
	fill(m.special[:])
	fill(m.align[:])
	m.matchLen.reset()
	m.repLen.reset()
	m.updateLenPrices()
	m.updateDistPrices()
	m.updateAlignPrices()
}

func (m *model) updateLenPrices() {
	m.matchLen.updatePrices()
	m.repLen.updatePrices()
	m.lenCount = 0
}

func (m *model) updateAlignPrices() {
	for i := range alignSize {
		m.alignPrices[i] = reverseTreePrice(m.align[:], alignBits, uint32(i))
	}
	m.alignCount = 0
}

func (m *model) updateDistPrices() {
	for ls := range lenStates {
		sp := &m.slotPrices[ls]
		for s := range uint32(1 << slotBits) {
			sp[s] = treePrice(m.slot[ls][:], slotBits, s)
			if s >= endModel {
				sp[s] += ((s >> 1) - 1 - alignBits) << priceBits
			}
		}
		dp := &m.distPrices[ls]
		for d := range uint32(fullDists) {
			s := distSlot(d)
			dp[d] = sp[s]
			if s >= startModel {
				footer := int(s>>1) - 1
				base := (2 | s&1) << footer
				dp[d] += reverseTreePrice(m.special[base-s:], footer, d-base)
			}
		}
	}
	m.distCount = 0
}

// refreshPrices brings the price tables up to date once enough symbols
// have changed the probabilities behind them.
func (m *model) refreshPrices() {
	if m.lenCount >= 64 {
		m.updateLenPrices()
	}
	if m.distCount >= 128 {
		m.updateDistPrices()
	}
	if m.alignCount >= alignSize {
		m.updateAlignPrices()
	}
}

func litOffset(pos int, prev byte) int {
	return 0x300 * (((pos & (1<<lp - 1)) << lc) + int(prev>>(8-lc)))
}

// litPrice is the price of coding byte c as a literal at pos in state s;
// after a match (s >= litStates) the literal is coded against match, the
// byte at distance rep0.
func (m *model) litPrice(pos int, prev byte, s uint32, c, match byte) uint32 {
	probs := m.lit[litOffset(pos, prev):]
	sym := uint32(c) | 0x100
	var sum uint32
	if s < litStates {
		for i := 7; i >= 0; i-- {
			sum += priceBit(probs[sym>>uint(i+1)], (sym>>uint(i))&1)
		}
		return sum
	}
	mb := uint32(match)
	m1 := uint32(1)
	matched := true
	for i := 7; i >= 0; i-- {
		b := (uint32(c) >> uint(i)) & 1
		if matched {
			mbit := (mb >> uint(i)) & 1
			sum += priceBit(probs[(1+mbit)<<8+m1], b)
			matched = mbit == b
		} else {
			sum += priceBit(probs[m1], b)
		}
		m1 = m1<<1 | b
	}
	return sum
}

func (m *model) encodeLiteral(e *rangeEncoder, pos int, prev byte, c, match byte) {
	ps := uint32(pos) & pbMask
	e.bit(&m.isMatch[m.state][ps], 0)
	probs := m.lit[litOffset(pos, prev):]
	if m.state < litStates {
		e.tree(probs, 8, uint32(c))
	} else {
		mb := uint32(match)
		m1 := uint32(1)
		matched := true
		for i := 7; i >= 0; i-- {
			b := (uint32(c) >> uint(i)) & 1
			if matched {
				mbit := (mb >> uint(i)) & 1
				e.bit(&probs[(1+mbit)<<8+m1], b)
				matched = mbit == b
			} else {
				e.bit(&probs[m1], b)
			}
			m1 = m1<<1 | b
		}
	}
	m.state = litNext(m.state)
}

func (m *model) encodeMatch(e *rangeEncoder, pos int, dist uint32, l int) {
	ps := uint32(pos) & pbMask
	e.bit(&m.isMatch[m.state][ps], 1)
	e.bit(&m.isRep[m.state], 0)
	m.matchLen.encode(e, uint32(l-minMatch), ps)
	s := distSlot(dist)
	e.tree(m.slot[lenState(l)][:], slotBits, s)
	if s >= startModel {
		footer := int(s>>1) - 1
		base := (2 | s&1) << footer
		red := dist - base
		if s < endModel {
			e.reverseTree(m.special[base-s:], footer, red)
		} else {
			e.direct(red>>alignBits, footer-alignBits)
			e.reverseTree(m.align[:], alignBits, red&(alignSize-1))
			m.alignCount++
		}
	}
	m.reps = [numReps]uint32{dist, m.reps[0], m.reps[1], m.reps[2]}
	m.state = matchNext(m.state)
	m.lenCount++
	m.distCount++
}

// encodeRep codes a match at the distance reps[r]; l == 1 is a "short rep",
// one byte at distance rep0.
func (m *model) encodeRep(e *rangeEncoder, pos int, r int, l int) {
	ps := uint32(pos) & pbMask
	s := m.state
	e.bit(&m.isMatch[s][ps], 1)
	e.bit(&m.isRep[s], 1)
	if r == 0 {
		e.bit(&m.isRepG0[s], 0)
		if l == 1 {
			e.bit(&m.isRep0Long[s][ps], 0)
			m.state = shortRepNext(s)
			return
		}
		e.bit(&m.isRep0Long[s][ps], 1)
	} else {
		e.bit(&m.isRepG0[s], 1)
		if r == 1 {
			e.bit(&m.isRepG1[s], 0)
		} else {
			e.bit(&m.isRepG1[s], 1)
			e.bit(&m.isRepG2[s], uint32(r-2))
		}
		d := m.reps[r]
		copy(m.reps[1:r+1], m.reps[:r])
		m.reps[0] = d
	}
	m.repLen.encode(e, uint32(l-minMatch), ps)
	m.state = repNext(s)
	m.lenCount++
}

// Prices of the parts of a symbol, as the parser needs them.

func (m *model) pureRepPrice(r int, s uint32, ps uint32) uint32 {
	if r == 0 {
		return price0(m.isRepG0[s]) + price1(m.isRep0Long[s][ps])
	}
	p := price1(m.isRepG0[s])
	if r == 1 {
		return p + price0(m.isRepG1[s])
	}
	return p + price1(m.isRepG1[s]) + priceBit(m.isRepG2[s], uint32(r-2))
}

func (m *model) shortRepPrice(s uint32, ps uint32) uint32 {
	return price0(m.isRepG0[s]) + price0(m.isRep0Long[s][ps])
}

func (m *model) distPrice(dist uint32, l int) uint32 {
	ls := lenState(l)
	if dist < fullDists {
		return m.distPrices[ls][dist]
	}
	return m.slotPrices[ls][distSlot(dist)] + m.alignPrices[dist&(alignSize-1)]
}
