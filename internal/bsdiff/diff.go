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
// old's suffixes are sorted (by the standard library's SA-IS, where bsdiff
// uses Larsson and Sadakane's qsufsort), and new is scanned for the
// longest matches in old, extended forwards and backwards while at least
// half of the bytes agree, so that content that moved or changed in place
// becomes a diff of mostly zeros. Sorting takes time linear in len(old)
// and about 8 bytes of memory per byte of old besides the patch (4 bytes
// once sorted, which the search keeps).
func Diff(old, new []byte) ([]byte, Stats) {
	sa, release := sortedSuffixes(old)
	defer release()
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
