package xzenc

// The optimal parser. From the current position it prices every way to
// reach each of the next positions, up to 4095 bytes ahead: a literal, a
// short rep, a rep match at each of the four recent distances and every
// length, a new match at every length the match finder reports, and the
// three-symbol sequences "rep or match, literal, rep0" that LZMA codes
// cheaply. The cheapest path to a position is kept with the state and
// recent distances it leaves, so the symbols after it are priced in that
// state. When no path can overtake the ones known (the search reaches the
// end of the longest candidate) or a match of nice length turns up, the
// cheapest path is taken.

const numOpts = 1 << 12

// sym is one symbol of a parse: a literal (dist == litDist), a short rep
// (len 1) or a match of len bytes at dist (distance - 1). Whether a match
// is coded as a rep is decided when it is coded, by the recent distances
// of that moment.
type sym struct {
	len  int
	dist uint32
}

type optNode struct {
	price uint32
	from  int32
	nsym  uint8
	state uint32
	reps  [numReps]uint32
	syms  [3]sym
}

func (n *optNode) set(price uint32, from int, syms ...sym) {
	n.price = price
	n.from = int32(from)
	n.nsym = uint8(copy(n.syms[:], syms))
}

// apply advances state and reps over one symbol, as coding it does.
func apply(state uint32, reps *[numReps]uint32, s sym) uint32 {
	switch {
	case s.dist == litDist:
		return litNext(state)
	case s.len == 1:
		return shortRepNext(state)
	}
	for r := range numReps {
		if reps[r] == s.dist {
			copy(reps[1:r+1], reps[:r])
			reps[0] = s.dist
			return repNext(state)
		}
	}
	reps[3], reps[2], reps[1], reps[0] = reps[2], reps[1], reps[0], s.dist
	return matchNext(state)
}

// parse fills e.pending with the symbols that code the input from pos.
func (e *encoder) parse(pos int) {
	m := &e.m
	d := e.data
	n := len(d)
	nice := e.niceLen
	e.pending = e.pending[:0]
	e.next = 0
	m.refreshPrices()

	matches := e.matchesAt(pos)
	mainLen := 0
	if k := len(matches); k > 0 {
		mainLen = matches[k-1].len
	}
	avail := min(n-pos, maxMatch)
	if avail < minMatch {
		e.pending = append(e.pending, sym{1, litDist})
		return
	}
	state, reps := m.state, m.reps
	var repLens [numReps]int
	repMax := 0
	for r := range numReps {
		dd := int(reps[r]) + 1
		if dd > pos || d[pos] != d[pos-dd] || d[pos+1] != d[pos+1-dd] {
			continue
		}
		repLens[r] = matchLen(d, pos, pos-dd, avail)
		if repLens[r] > repLens[repMax] {
			repMax = r
		}
	}
	if repLens[repMax] >= nice {
		e.take(sym{repLens[repMax], reps[repMax]})
		return
	}
	if mainLen >= nice {
		e.take(sym{mainLen, matches[len(matches)-1].dist})
		return
	}
	cur0 := d[pos]
	valid0 := int(reps[0]) < pos
	var mb0 byte
	if valid0 {
		mb0 = d[pos-int(reps[0])-1]
	}
	if mainLen < minMatch && !(valid0 && mb0 == cur0) && repLens[repMax] < minMatch {
		e.pending = append(e.pending, sym{1, litDist})
		return
	}

	opt := e.opt
	ps := uint32(pos) & pbMask
	opt[0].state, opt[0].reps, opt[0].price = state, reps, 0
	opt[1].set(price0(m.isMatch[state][ps])+m.litPrice(pos, e.prev(pos), state, cur0, mb0), 0, sym{1, litDist})
	matchPrice := price1(m.isMatch[state][ps])
	repMatchPrice := matchPrice + price1(m.isRep[state])
	if valid0 && mb0 == cur0 {
		if p := repMatchPrice + m.shortRepPrice(state, ps); p < opt[1].price {
			opt[1].set(p, 0, sym{1, reps[0]})
		}
	}
	lenEnd := max(mainLen, repLens[repMax])
	if lenEnd < minMatch {
		e.pending = append(e.pending, opt[1].syms[0])
		return
	}
	for i := 2; i <= lenEnd; i++ {
		opt[i].price = infinity
	}
	for r := range numReps {
		if repLens[r] < minMatch {
			continue
		}
		price := repMatchPrice + m.pureRepPrice(r, state, ps)
		for l := repLens[r]; l >= minMatch; l-- {
			if c := price + m.repLen.prices[ps][l-minMatch]; c < opt[l].price {
				opt[l].set(c, 0, sym{l, reps[r]})
			}
		}
	}
	normal := matchPrice + price0(m.isRep[state])
	l := minMatch
	if repLens[0] >= minMatch {
		l = repLens[0] + 1
	}
	if l <= mainLen {
		k := 0
		for l > matches[k].len {
			k++
		}
		for ; ; l++ {
			dist := matches[k].dist
			if c := normal + m.matchLen.prices[ps][l-minMatch] + m.distPrice(dist, l); c < opt[l].price {
				opt[l].set(c, 0, sym{l, dist})
			}
			if l == matches[k].len {
				k++
				if k == len(matches) {
					break
				}
			}
		}
	}

	cur := 0
	for {
		cur++
		if cur == lenEnd {
			break
		}
		matches = e.matchesAt(pos + cur)
		newLen := 0
		if k := len(matches); k > 0 {
			newLen = matches[k-1].len
		}
		if newLen >= nice {
			break
		}
		node := &opt[cur]
		from := &opt[node.from]
		st, rp := from.state, from.reps
		for _, s := range node.syms[:node.nsym] {
			st = apply(st, &rp, s)
		}
		node.state, node.reps = st, rp
		e.step(pos, cur, st, &rp, matches, &lenEnd)
	}
	e.backward(cur)
}

// step extends the paths from position pos+cur, reached in state st with
// recent distances rp.
func (e *encoder) step(pos, cur int, st uint32, rp *[numReps]uint32, matches []match, lenEnd *int) {
	m := &e.m
	d := e.data
	n := len(d)
	nice := e.niceLen
	opt := e.opt
	p := pos + cur
	curPrice := opt[cur].price
	c0 := d[p]
	valid0 := int(rp[0]) < p
	var mb byte
	if valid0 {
		mb = d[p-int(rp[0])-1]
	}
	ps := uint32(p) & pbMask
	cur1Price := curPrice + price0(m.isMatch[st][ps]) + m.litPrice(p, d[p-1], st, c0, mb)
	next := &opt[cur+1]
	nextIsLit := false
	if cur1Price < next.price {
		next.set(cur1Price, cur, sym{1, litDist})
		nextIsLit = true
	}
	matchPrice := curPrice + price1(m.isMatch[st][ps])
	repMatchPrice := matchPrice + price1(m.isRep[st])
	if valid0 && mb == c0 {
		if sp := repMatchPrice + m.shortRepPrice(st, ps); sp <= next.price {
			next.set(sp, cur, sym{1, rp[0]})
			nextIsLit = true
		}
	}
	availFull := min(n-p, numOpts-1-cur)
	if availFull < minMatch {
		return
	}
	avail := min(availFull, nice)

	// A literal, then rep0.
	if !nextIsLit && !(valid0 && mb == c0) {
		if dd := int(rp[0]) + 1; dd <= p+1 {
			if l2 := matchLen(d, p+1, p+1-dd, min(availFull-1, nice)); l2 >= minMatch {
				st2 := litNext(st)
				ps2 := uint32(p+1) & pbMask
				c := cur1Price + price1(m.isMatch[st2][ps2]) + price1(m.isRep[st2]) +
					m.pureRepPrice(0, st2, ps2) + m.repLen.prices[ps2][l2-minMatch]
				off := cur + 1 + l2
				e.extend(lenEnd, off)
				if c < opt[off].price {
					opt[off].set(c, cur, sym{1, litDist}, sym{l2, rp[0]})
				}
			}
		}
	}

	startLen := minMatch
	for r := range numReps {
		dd := int(rp[r]) + 1
		if dd > p || d[p] != d[p-dd] || d[p+1] != d[p+1-dd] {
			continue
		}
		lt := matchLen(d, p, p-dd, avail)
		e.extend(lenEnd, cur+lt)
		price := repMatchPrice + m.pureRepPrice(r, st, ps)
		for l := lt; l >= minMatch; l-- {
			if c := price + m.repLen.prices[ps][l-minMatch]; c < opt[cur+l].price {
				opt[cur+l].set(c, cur, sym{l, rp[r]})
			}
		}
		if r == 0 {
			startLen = lt + 1
		}
		// The rep, a literal, then the same distance again as rep0.
		e.litRep0(cur, p, availFull, repNext(st), price+m.repLen.prices[ps][lt-minMatch], sym{lt, rp[r]}, lenEnd)
	}

	if len(matches) == 0 {
		return
	}
	if matches[len(matches)-1].len > avail {
		e.trimmed = append(e.trimmed[:0], matches...)
		matches = e.trimmed
		k := 0
		for matches[k].len < avail {
			k++
		}
		matches[k].len = avail
		matches = matches[:k+1]
	}
	newLen := matches[len(matches)-1].len
	if newLen < startLen {
		return
	}
	normal := matchPrice + price0(m.isRep[st])
	e.extend(lenEnd, cur+newLen)
	k := 0
	for startLen > matches[k].len {
		k++
	}
	dist := matches[k].dist
	for l := startLen; ; l++ {
		c := normal + m.matchLen.prices[ps][l-minMatch] + m.distPrice(dist, l)
		if c < opt[cur+l].price {
			opt[cur+l].set(c, cur, sym{l, dist})
		}
		if l != matches[k].len {
			continue
		}
		// The match, a literal, then rep0 at its distance.
		e.litRep0(cur, p, availFull, matchNext(st), c, sym{l, dist}, lenEnd)
		k++
		if k == len(matches) {
			break
		}
		dist = matches[k].dist
	}
}

// extend makes the positions up to to candidates of the parse, with no
// path yet.
// litRep0 tries, after first (a match or rep ending at position cur+first.len of the
// parse, p+first.len of the data, in state st, at price c), a literal and then rep0 at
// first's distance: a path the parser would otherwise see only from the next position.
func (e *encoder) litRep0(cur, p, availFull int, st uint32, c uint32, first sym, lenEnd *int) {
	m, d, opt := &e.m, e.data, e.opt
	l, dd := first.len, int(first.dist)+1
	lim := min(availFull, l+1+e.niceLen)
	j := l + 1
	for j < lim && d[p+j] == d[p+j-dd] {
		j++
	}
	l2 := j - l - 1
	if l2 < minMatch {
		return
	}
	ps := uint32(p+l) & pbMask
	c += price0(m.isMatch[st][ps]) + m.litPrice(p+l, d[p+l-1], st, d[p+l], d[p+l-dd])
	st = litNext(st)
	ps = uint32(p+l+1) & pbMask
	c += price1(m.isMatch[st][ps]) + price1(m.isRep[st]) + m.pureRepPrice(0, st, ps) + m.repLen.prices[ps][l2-minMatch]
	off := cur + l + 1 + l2
	e.extend(lenEnd, off)
	if c < opt[off].price {
		opt[off].set(c, cur, first, sym{1, litDist}, sym{l2, first.dist})
	}
}

func (e *encoder) extend(lenEnd *int, to int) {
	for *lenEnd < to {
		*lenEnd++
		e.opt[*lenEnd].price = infinity
	}
}

// backward collects the cheapest path to cur into e.pending.
func (e *encoder) backward(cur int) {
	opt := e.opt
	e.pending = e.pending[:0]
	for i := cur; i > 0; i = int(opt[i].from) {
		n := &opt[i]
		for j := int(n.nsym) - 1; j >= 0; j-- {
			e.pending = append(e.pending, n.syms[j])
		}
	}
	for i, j := 0, len(e.pending)-1; i < j; i, j = i+1, j-1 {
		e.pending[i], e.pending[j] = e.pending[j], e.pending[i]
	}
}

// take makes s, a match found at the current position, the parse, and
// inserts the positions it covers into the match finder.
func (e *encoder) take(s sym) {
	e.pending = append(e.pending, s)
	for range s.len - 1 {
		e.mf.skip()
	}
}

// matchesAt returns the matches at p, which is the next position the
// finder inserts or the last it reported.
func (e *encoder) matchesAt(p int) []match {
	if p == e.lastPos {
		return e.lastMatches
	}
	if p != e.mf.pos {
		panic("xzenc: match finder out of step")
	}
	e.lastPos = p
	e.lastMatches = e.mf.find()
	return e.lastMatches
}
