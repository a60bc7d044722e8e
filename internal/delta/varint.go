package delta

import (
	"fmt"

	"github.com/strata-os/strata/internal/errdefs"
)

// appendVarint appends x as libostree's varuint64 (LEB128: 7 bits a byte,
// low first, high bit set on all but the last byte).
func appendVarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

// readVarint decodes one varuint64 from b and returns it with the number of
// bytes it used.
func readVarint(b []byte) (uint64, int, error) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		c := b[i]
		if i == 9 && c > 1 {
			break
		}
		x |= uint64(c&0x7f) << (7 * i)
		if c < 0x80 {
			return x, i + 1, nil
		}
	}
	return 0, 0, fmt.Errorf("malformed varint in operations: %w", errdefs.ErrInvalid)
}
