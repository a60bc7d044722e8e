package bsdiff

import (
	"encoding/binary"
	"fmt"

	"github.com/strata-os/strata/internal/errdefs"
)

// offtin decodes bsdiff's 8-byte sign-magnitude integer.
func offtin(b []byte) int64 {
	x := binary.LittleEndian.Uint64(b)
	y := int64(x &^ (1 << 63))
	if x&(1<<63) != 0 {
		y = -y
	}
	return y
}

// Patch returns the newSize bytes that patch makes of old. Every length is
// checked against the patch, the old file and newSize before it is used: a
// patch that reads or writes out of bounds, or ends early, is
// errdefs.ErrInvalid, as libostree's bspatch refuses it. Old bytes outside
// old count as zero, as in bspatch.
func Patch(old []byte, newSize int64, patch []byte) ([]byte, error) {
	if newSize < 0 {
		return nil, fmt.Errorf("bspatch: new size %d: %w", newSize, errdefs.ErrInvalid)
	}
	// Every new byte is read from the patch (a diff byte or an extra
	// byte), so the patch bounds the memory a hostile size can take.
	if newSize > int64(len(patch)) {
		return nil, fmt.Errorf("bspatch: new size %d for a %d-byte patch: %w", newSize, len(patch), errdefs.ErrInvalid)
	}
	out := make([]byte, newSize)
	var newPos, oldPos int64
	p := patch
	take := func(n int64) ([]byte, error) {
		if n < 0 || n > int64(len(p)) {
			return nil, fmt.Errorf("bspatch: patch ends early: %w", errdefs.ErrInvalid)
		}
		b := p[:n]
		p = p[n:]
		return b, nil
	}
	for newPos < newSize {
		ctrl, err := take(24)
		if err != nil {
			return nil, err
		}
		add, copyLen, seek := offtin(ctrl[0:8]), offtin(ctrl[8:16]), offtin(ctrl[16:24])
		if add < 0 || copyLen < 0 || add > newSize-newPos {
			return nil, fmt.Errorf("bspatch: control (%d, %d) at %d of %d: %w", add, copyLen, newPos, newSize, errdefs.ErrInvalid)
		}
		diff, err := take(add)
		if err != nil {
			return nil, err
		}
		for i, d := range diff {
			o := oldPos + int64(i)
			if o >= 0 && o < int64(len(old)) {
				d += old[o]
			}
			out[newPos+int64(i)] = d
		}
		newPos += add
		oldPos += add
		if copyLen > newSize-newPos {
			return nil, fmt.Errorf("bspatch: extra of %d at %d of %d: %w", copyLen, newPos, newSize, errdefs.ErrInvalid)
		}
		extra, err := take(copyLen)
		if err != nil {
			return nil, err
		}
		copy(out[newPos:], extra)
		newPos += copyLen
		if (seek > 0 && oldPos > (1<<62)) || (seek < 0 && oldPos < -(1<<62)) {
			return nil, fmt.Errorf("bspatch: seek out of range: %w", errdefs.ErrInvalid)
		}
		oldPos += seek
	}
	return out, nil
}
