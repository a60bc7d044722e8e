package gvariant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"

	"github.com/strata-os/strata/internal/errdefs"
)

// Unmarshal decodes data as a value of type t (see encode.go for the Go
// representation). Unlike GLib, which substitutes default values for
// malformed data, it returns an error wrapping errdefs.ErrInvalid for any
// framing that does not fit: OSTree objects are content-addressed, so
// malformed metadata is corruption, not something to paper over. Padding is
// not checked; use IsNormal for that.
func Unmarshal(t *Type, data []byte) (any, error) {
	d := decoder{}
	return d.value(t, data, 0)
}

// IsNormal reports whether data is the normal-form serialization of a value
// of type t: it decodes and re-encodes and compares the bytes.
func IsNormal(t *Type, data []byte) bool {
	v, err := Unmarshal(t, data)
	if err != nil {
		return false
	}
	again, err := Marshal(t, v)
	return err == nil && bytes.Equal(again, data)
}

type decoder struct{}

func malformed(t *Type, format string, args ...any) error {
	return fmt.Errorf("malformed %q: %s: %w", clip(t.sig), fmt.Sprintf(format, args...), errdefs.ErrInvalid)
}

func (d *decoder) value(t *Type, b []byte, depth int) (any, error) {
	if depth > maxDepth {
		return nil, malformed(t, "nested deeper than %d", maxDepth)
	}
	if t.fixed > 0 && len(b) != t.fixed {
		return nil, malformed(t, "%d bytes, want %d", len(b), t.fixed)
	}
	le := binary.LittleEndian
	switch t.kind {
	case 'b':
		if b[0] > 1 {
			return nil, malformed(t, "boolean byte %#x", b[0])
		}
		return b[0] == 1, nil
	case 'y':
		return b[0], nil
	case 'n':
		return int16(le.Uint16(b)), nil
	case 'q':
		return le.Uint16(b), nil
	case 'i', 'h':
		return int32(le.Uint32(b)), nil
	case 'u':
		return le.Uint32(b), nil
	case 'x':
		return int64(le.Uint64(b)), nil
	case 't':
		return le.Uint64(b), nil
	case 'd':
		return math.Float64frombits(le.Uint64(b)), nil
	case 's', 'o', 'g':
		if len(b) == 0 || b[len(b)-1] != 0 {
			return nil, malformed(t, "string not NUL-terminated")
		}
		s := string(b[:len(b)-1])
		if err := checkString(t.kind, s); err != nil {
			return nil, err
		}
		return s, nil
	case 'v':
		i := bytes.LastIndexByte(b, 0)
		if i < 0 {
			return nil, malformed(t, "no type separator")
		}
		ct, err := ParseType(string(b[i+1:]))
		if err != nil {
			return nil, malformed(t, "child type: %v", err)
		}
		cv, err := d.value(ct, b[:i], depth+1)
		if err != nil {
			return nil, err
		}
		return Variant{Type: ct, Value: cv}, nil
	case 'm':
		if len(b) == 0 {
			return Maybe{}, nil
		}
		inner := b
		if t.elem.fixed == 0 {
			if b[len(b)-1] != 0 {
				return nil, malformed(t, "maybe without trailing NUL")
			}
			inner = b[:len(b)-1]
		}
		cv, err := d.value(t.elem, inner, depth+1)
		if err != nil {
			return nil, err
		}
		return Maybe{Valid: true, Value: cv}, nil
	case 'a':
		return d.array(t, b, depth)
	case '(':
		xs, err := d.tuple(t, b, depth)
		if err != nil {
			return nil, err
		}
		return Tuple(xs), nil
	case '{':
		xs, err := d.tuple(t, b, depth)
		if err != nil {
			return nil, err
		}
		return DictEntry{Key: xs[0], Value: xs[1]}, nil
	}
	return nil, fmt.Errorf("internal error: unknown type %q", t.sig)
}

func readOffset(b []byte, w int) int {
	switch w {
	case 1:
		return int(b[0])
	case 2:
		return int(binary.LittleEndian.Uint16(b))
	case 4:
		return int(binary.LittleEndian.Uint32(b))
	}
	u := binary.LittleEndian.Uint64(b)
	if u > math.MaxInt32*2 {
		return -1
	}
	return int(u)
}

// Elements returns the byte ranges of the elements of an array of
// variable-size elements, for callers that decode lazily.
func (d *decoder) spans(t *Type, b []byte) ([][2]int, error) {
	el := t.elem
	if len(b) == 0 {
		return nil, nil
	}
	if el.fixed > 0 {
		if len(b)%el.fixed != 0 {
			return nil, malformed(t, "%d bytes is not a multiple of element size %d", len(b), el.fixed)
		}
		n := len(b) / el.fixed
		out := make([][2]int, n)
		for i := range out {
			out[i] = [2]int{i * el.fixed, (i + 1) * el.fixed}
		}
		return out, nil
	}
	w := sizeWidth(len(b))
	if len(b) < w {
		return nil, malformed(t, "too short for offsets")
	}
	last := readOffset(b[len(b)-w:], w)
	if last < 0 || last > len(b)-w || (len(b)-last)%w != 0 {
		return nil, malformed(t, "bad offset table start %d", last)
	}
	n := (len(b) - last) / w
	out := make([][2]int, n)
	prev := 0
	for i := 0; i < n; i++ {
		end := readOffset(b[last+i*w:], w)
		start := alignUp(prev, el.align)
		if end < start || end > last {
			return nil, malformed(t, "element %d ends at %d, outside %d..%d", i, end, start, last)
		}
		out[i] = [2]int{start, end}
		prev = end
	}
	return out, nil
}

func (d *decoder) array(t *Type, b []byte, depth int) (any, error) {
	el := t.elem
	if el.kind == 'y' {
		return append([]byte(nil), b...), nil
	}
	sp, err := d.spans(t, b)
	if err != nil {
		return nil, err
	}
	if el.kind == '{' {
		out := make([]DictEntry, len(sp))
		for i, s := range sp {
			v, err := d.value(el, b[s[0]:s[1]], depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v.(DictEntry)
		}
		return out, nil
	}
	out := make([]any, len(sp))
	for i, s := range sp {
		v, err := d.value(el, b[s[0]:s[1]], depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

func (d *decoder) tuple(t *Type, b []byte, depth int) ([]any, error) {
	out := make([]any, len(t.fields))
	if len(t.fields) == 0 {
		return out, nil
	}
	w := sizeWidth(len(b))
	offEnd := len(b) // offsets are consumed from the end backwards
	pos := 0
	for i, f := range t.fields {
		start := alignUp(pos, f.align)
		var end int
		switch {
		case f.fixed > 0:
			end = start + f.fixed
		case i == len(t.fields)-1:
			end = offEnd
		default:
			if offEnd-w < 0 {
				return nil, malformed(t, "too short for offsets")
			}
			offEnd -= w
			end = readOffset(b[offEnd:], w)
		}
		if start > len(b) || end < start || end > offEnd {
			return nil, malformed(t, "member %d spans %d..%d of %d", i, start, end, len(b))
		}
		v, err := d.value(f, b[start:end], depth+1)
		if err != nil {
			return nil, err
		}
		out[i] = v
		pos = end
	}
	return out, nil
}
