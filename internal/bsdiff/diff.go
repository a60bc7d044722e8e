package bsdiff

import "bytes"

// Stats says what a patch made of new: how many of its bytes are copied
// from old unchanged (a zero in the diff), how many differ in matched
// regions, and how many are extra bytes carried whole. Zeros compress to
// almost nothing, so Same/len(new) tells how much smaller than the file
// the compressed patch will be.
type Stats struct {
	Same, Changed, Extra int
}

// Diff returns a patch that makes new of old, found by bsdiff's search:
// old's suffixes are sorted (Larsson and Sadakane's qsufsort, as bsdiff
// does), and new is scanned for the longest matches in old, extended
// forwards and backwards while at least half of the bytes agree, so that
// content that moved or changed in place becomes a diff of mostly zeros.
// It takes time O(n log n) in len(old) and 8 bytes of memory per byte of
// old besides the patch.
func Diff(old, new []byte) ([]byte, Stats) {
	sa := suffixArray(old)
	return diffWith(sa, old, new)
}

func diffWith(sa []int32, old, new []byte) ([]byte, Stats) {
	var st Stats
	out := make([]byte, 0, len(new)/2+64)
	emit := func(lastScan, lastPos, lenf, extra, seek int) {
		out = appendOff(out, int64(lenf))
		out = appendOff(out, int64(extra))
		out = appendOff(out, int64(seek))
		for i := range lenf {
			d := new[lastScan+i] - old[lastPos+i]
			if d == 0 {
				st.Same++
			} else {
				st.Changed++
			}
			out = append(out, d)
		}
		out = append(out, new[lastScan+lenf:lastScan+lenf+extra]...)
		st.Extra += extra
	}
	var scan, n, pos, lastScan, lastPos, lastOffset int
	for scan < len(new) {
		oldScore := 0
		scan += n
		for scsc := scan; scan < len(new); scan++ {
			pos, n = search(sa, old, new[scan:])
			for ; scsc < scan+n; scsc++ {
				if scsc+lastOffset < len(old) && old[scsc+lastOffset] == new[scsc] {
					oldScore++
				}
			}
			if (n == oldScore && n != 0) || n > oldScore+8 {
				break
			}
			if scan+lastOffset < len(old) && old[scan+lastOffset] == new[scan] {
				oldScore--
			}
		}
		if n == oldScore && scan != len(new) {
			continue
		}
		// Extend the previous match forwards while half the bytes agree.
		s, best, lenf := 0, 0, 0
		for i := 0; lastScan+i < scan && lastPos+i < len(old); {
			if old[lastPos+i] == new[lastScan+i] {
				s++
			}
			i++
			if s*2-i > best*2-lenf {
				best, lenf = s, i
			}
		}
		// Extend the new match backwards likewise.
		lenb := 0
		if scan < len(new) {
			s, best := 0, 0
			for i := 1; scan >= lastScan+i && pos >= i; i++ {
				if old[pos-i] == new[scan-i] {
					s++
				}
				if s*2-i > best*2-lenb {
					best, lenb = s, i
				}
			}
		}
		// Where the two extensions overlap, split them where the most
		// bytes agree.
		if lastScan+lenf > scan-lenb {
			overlap := lastScan + lenf - (scan - lenb)
			s, best, lens := 0, 0, 0
			for i := range overlap {
				if new[lastScan+lenf-overlap+i] == old[lastPos+lenf-overlap+i] {
					s++
				}
				if new[scan-lenb+i] == old[pos-lenb+i] {
					s--
				}
				if s > best {
					best, lens = s, i+1
				}
			}
			lenf += lens - overlap
			lenb -= lens
		}
		emit(lastScan, lastPos, lenf, scan-lenb-(lastScan+lenf), pos-lenb-(lastPos+lenf))
		lastScan, lastPos, lastOffset = scan-lenb, pos-lenb, pos-scan
	}
	return out, st
}

// search returns the position in old of the longest prefix of new that
// old holds, and its length, by binary search over old's sorted suffixes.
func search(sa []int32, old, new []byte) (pos, n int) {
	lo, hi := 0, len(sa)-1
	for hi-lo >= 2 {
		mid := lo + (hi-lo)/2
		p := int(sa[mid])
		m := min(len(old)-p, len(new))
		if bytes.Compare(old[p:p+m], new[:m]) < 0 {
			lo = mid
		} else {
			hi = mid
		}
	}
	x, y := matchLen(old[sa[lo]:], new), matchLen(old[sa[hi]:], new)
	if x > y {
		return int(sa[lo]), x
	}
	return int(sa[hi]), y
}

func matchLen(a, b []byte) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// suffixArray returns the suffixes of b (with the empty one) in sorted
// order, by Larsson and Sadakane's doubling sort: groups of suffixes that
// agree on their first h bytes are split by the group of the suffix h
// further on, h doubling each round, until every group has one member.
// v holds each suffix's group number (the index of the group's last
// member); in sa a run of sorted singletons is marked by its negated
// length. The first round is a radix sort on four bytes (qsufsort starts
// from one), which leaves few groups to split in binary files.
func suffixArray(b []byte) []int32 {
	n := len(b)
	sa := make([]int32, n+1)
	v := make([]int32, n+1)
	radix4(b, sa[1:])
	sa[0] = int32(n)
	// Number the groups of equal first four bytes (and equal length,
	// for suffixes shorter than that).
	for i := n; i >= 1; {
		j := i
		for j > 1 && same4(b, int(sa[j-1]), int(sa[i])) {
			j--
		}
		for k := j; k <= i; k++ {
			v[sa[k]] = int32(i)
		}
		if j == i {
			sa[i] = -1
		}
		i = j - 1
	}
	v[n] = 0
	sa[0] = -1
	for h := int32(4); sa[0] != -int32(n+1); h += h {
		run := int32(0) // length of the sorted run being gathered
		i := int32(0)
		for i < int32(n+1) {
			if sa[i] < 0 {
				run -= sa[i]
				i -= sa[i]
				continue
			}
			if run != 0 {
				sa[i-run] = -run
			}
			size := v[sa[i]] + 1 - i
			split(sa, v, i, size, h)
			i += size
			run = 0
		}
		if run != 0 {
			sa[i-run] = -run
		}
	}
	for i := range v {
		sa[v[i]] = int32(i)
	}
	return sa
}

// digit returns radix digit d of suffix i: d 0 is its length up to 4, d 1
// to 4 its bytes 3 to 0 (0 past the end), so that the four-byte prefix
// sorts first and a shorter suffix before a longer one with the same bytes.
func digit(b []byte, i, d int) int {
	if d == 0 {
		return min(len(b)-i, 4)
	}
	if k := i + 4 - d; k < len(b) {
		return int(b[k])
	}
	return 0
}

func same4(b []byte, i, j int) bool {
	for d := range 5 {
		if digit(b, i, d) != digit(b, j, d) {
			return false
		}
	}
	return true
}

// radix4 fills out with the suffixes of b sorted by their first four bytes
// (a least-significant-digit radix sort; a stable sort per digit).
func radix4(b []byte, out []int32) {
	if len(out) == 0 {
		return
	}
	tmp := make([]int32, len(out))
	for i := range tmp {
		tmp[i] = int32(i)
	}
	src, dst := tmp, out
	for d := range 5 {
		var count [257]int
		for _, i := range src {
			count[digit(b, int(i), d)+1]++
		}
		for c := 1; c < 257; c++ {
			count[c] += count[c-1]
		}
		for _, i := range src {
			c := digit(b, int(i), d)
			dst[count[c]] = i
			count[c]++
		}
		src, dst = dst, src
	}
	// Five passes end in tmp.
	copy(out, src)
}

// split sorts the group sa[start:start+size] by the group numbers h bytes
// on, a ternary quicksort, and renumbers the new groups.
func split(sa, v []int32, start, size, h int32) {
	key := func(i int32) int32 { return v[sa[i]+h] }
	if size < 16 {
		// Selection sort of small groups, one group of equal keys at a time.
		for k := start; k < start+size; {
			j, x := int32(1), key(k)
			for i := int32(1); k+i < start+size; i++ {
				if key(k+i) < x {
					x, j = key(k+i), 0
				}
				if key(k+i) == x {
					sa[k+j], sa[k+i] = sa[k+i], sa[k+j]
					j++
				}
			}
			for i := range j {
				v[sa[k+i]] = k + j - 1
			}
			if j == 1 {
				sa[k] = -1
			}
			k += j
		}
		return
	}
	x := key(start + size/2)
	var lt, eq int32
	for i := start; i < start+size; i++ {
		switch k := key(i); {
		case k < x:
			lt++
		case k == x:
			eq++
		}
	}
	lt += start    // end of the smaller keys
	eq += lt       // end of the equal keys
	var j, k int32 // fill of the equal and greater regions
	for i := start; i < lt; {
		switch kk := key(i); {
		case kk < x:
			i++
		case kk == x:
			sa[i], sa[lt+j] = sa[lt+j], sa[i]
			j++
		default:
			sa[i], sa[eq+k] = sa[eq+k], sa[i]
			k++
		}
	}
	for lt+j < eq {
		if key(lt+j) == x {
			j++
		} else {
			sa[lt+j], sa[eq+k] = sa[eq+k], sa[lt+j]
			k++
		}
	}
	if lt > start {
		split(sa, v, start, lt-start, h)
	}
	for i := lt; i < eq; i++ {
		v[sa[i]] = eq - 1
	}
	if lt == eq-1 {
		sa[lt] = -1
	}
	if start+size > eq {
		split(sa, v, eq, start+size-eq, h)
	}
}

// appendOff appends x in bsdiff's 8-byte sign-magnitude little-endian form.
func appendOff(b []byte, x int64) []byte {
	u := uint64(x)
	if x < 0 {
		u = uint64(-x) | 1<<63
	}
	for i := 0; i < 8; i++ {
		b = append(b, byte(u>>(8*i)))
	}
	return b
}
