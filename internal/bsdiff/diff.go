package bsdiff

// Diff returns a patch that makes new of old: one control triple whose
// diff covers the length the two files share, byte by byte, and whose
// extra bytes are the rest of new. It is the degenerate case of bsdiff's
// search (no suffix sort, no realignment): where a file changed in place,
// as a rebuilt binary or kernel of the same layout does, the diff is mostly
// zeros and compresses to a small fraction of the file; Zeros tells how
// well it will do. Content that moved needs bsdiff's search, which this
// package does not implement.
func Diff(old, new []byte) []byte {
	n := min(len(old), len(new))
	out := make([]byte, 0, 24+len(new))
	out = appendOff(out, int64(n))
	out = appendOff(out, int64(len(new)-n))
	out = appendOff(out, 0)
	for i := 0; i < n; i++ {
		out = append(out, new[i]-old[i])
	}
	return append(out, new[n:]...)
}

// Zeros returns the share of the bytes of new that Diff encodes as zero
// (unchanged bytes at the same offset), between 0 and 1.
func Zeros(old, new []byte) float64 {
	if len(new) == 0 {
		return 1
	}
	n, same := min(len(old), len(new)), 0
	for i := 0; i < n; i++ {
		if old[i] == new[i] {
			same++
		}
	}
	return float64(same) / float64(len(new))
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
