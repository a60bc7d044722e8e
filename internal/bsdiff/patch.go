package bsdiff

import (
	"encoding/binary"
	"fmt"
	"io"

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
	if err := checkSize(newSize, patch); err != nil {
		return nil, err
	}
	out := make([]byte, 0, newSize)
	err := apply(old, newSize, patch, make([]byte, chunk), func(b []byte) error {
		out = append(out, b...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PatchTo writes the newSize bytes that patch makes of old to w, as Patch
// returns them, in pieces of at most 256 KiB: the result is not held
// whole. On error, w may have received a prefix of the result.
func PatchTo(w io.Writer, old []byte, newSize int64, patch []byte) error {
	if err := checkSize(newSize, patch); err != nil {
		return err
	}
	return apply(old, newSize, patch, make([]byte, chunk), func(b []byte) error {
		_, err := w.Write(b)
		return err
	})
}

// chunk is the size of the pieces of diff bytes apply emits.
const chunk = 256 << 10

func checkSize(newSize int64, patch []byte) error {
	if newSize < 0 {
		return fmt.Errorf("bspatch: new size %d: %w", newSize, errdefs.ErrInvalid)
	}
	// Every new byte is read from the patch (a diff byte or an extra
	// byte), so the patch bounds the memory a hostile size can take.
	if newSize > int64(len(patch)) {
		return fmt.Errorf("bspatch: new size %d for a %d-byte patch: %w", newSize, len(patch), errdefs.ErrInvalid)
	}
	return nil
}

// apply runs the patch, passing the result to emit in order: diff bytes
// added to old in pieces of buf, extra bytes as slices of the patch.
func apply(old []byte, newSize int64, patch, buf []byte, emit func([]byte) error) error {
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
			return err
		}
		add, copyLen, seek := offtin(ctrl[0:8]), offtin(ctrl[8:16]), offtin(ctrl[16:24])
		if add < 0 || copyLen < 0 || add > newSize-newPos {
			return fmt.Errorf("bspatch: control (%d, %d) at %d of %d: %w", add, copyLen, newPos, newSize, errdefs.ErrInvalid)
		}
		diff, err := take(add)
		if err != nil {
			return err
		}
		for len(diff) > 0 {
			d := diff[:min(len(diff), len(buf))]
			out := buf[:len(d)]
			// The stretch of old that the diff bytes add to, clipped to
			// old: bytes outside it count as zero.
			lo, hi := max(oldPos, 0), min(oldPos+int64(len(d)), int64(len(old)))
			if lo >= hi {
				copy(out, d)
			} else {
				copy(out[:lo-oldPos], d)
				o, dd := old[lo:hi], d[lo-oldPos:hi-oldPos]
				for i := range dd {
					out[lo-oldPos+int64(i)] = dd[i] + o[i]
				}
				copy(out[hi-oldPos:], d[hi-oldPos:])
			}
			if err := emit(out); err != nil {
				return err
			}
			diff = diff[len(d):]
			oldPos += int64(len(d))
			newPos += int64(len(d))
		}
		if copyLen > newSize-newPos {
			return fmt.Errorf("bspatch: extra of %d at %d of %d: %w", copyLen, newPos, newSize, errdefs.ErrInvalid)
		}
		extra, err := take(copyLen)
		if err != nil {
			return err
		}
		if len(extra) > 0 {
			if err := emit(extra); err != nil {
				return err
			}
		}
		newPos += copyLen
		if (seek > 0 && oldPos > (1<<62)) || (seek < 0 && oldPos < -(1<<62)) {
			return fmt.Errorf("bspatch: seek out of range: %w", errdefs.ErrInvalid)
		}
		oldPos += seek
	}
	return nil
}
