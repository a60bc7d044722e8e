package gvariant

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/strata-os/strata/internal/errdefs"
)

// Go representation of GVariant values, by type:
//
//	b bool · y uint8 · n int16 · q uint16 · i, h int32 · u uint32
//	x int64 · t uint64 · d float64 · s, o, g string
//	v Variant · mT Maybe · ay []byte · a{KV} []DictEntry · other aT []any
//	(…) Tuple · {KV} DictEntry
//
// Integers are serialized little-endian, as every real OSTree writer does;
// fields that libostree byte-swaps are swapped by the caller (package ostree).

// Variant is a value of type "v": a value together with its type.
type Variant struct {
	Type  *Type
	Value any
}

// Maybe is a value of a maybe type: Nothing when Valid is false.
type Maybe struct {
	Valid bool
	Value any
}

// Tuple is a value of a tuple type, one element per member.
type Tuple []any

// DictEntry is one key/value pair; a{KV} keeps entries in their given order,
// which matters for checksums (docs/formats/objects.md).
type DictEntry struct {
	Key   any
	Value any
}

// Marshal serializes v as type t in normal form.
func Marshal(t *Type, v any) ([]byte, error) {
	return AppendMarshal(nil, t, v)
}

// AppendMarshal appends the serialization of v to buf. buf's length must be
// a multiple of 8 so that alignment relative to the value holds.
func AppendMarshal(buf []byte, t *Type, v any) ([]byte, error) {
	if len(buf)%8 != 0 {
		return nil, fmt.Errorf("internal error: AppendMarshal at unaligned offset %d", len(buf))
	}
	e := encoder{buf: buf}
	if err := e.value(t, v, len(buf)); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type encoder struct{ buf []byte }

func (e *encoder) pad(start, align int) {
	for (len(e.buf)-start)%align != 0 {
		e.buf = append(e.buf, 0)
	}
}

func typeErr(t *Type, v any) error {
	return fmt.Errorf("value of Go type %T for GVariant type %q: %w", v, clip(t.sig), errdefs.ErrInvalid)
}

// value writes v at the current end of the buffer; the caller has already
// aligned it. start is the offset of the enclosing value's start, used only
// to keep padding relative to containers.
func (e *encoder) value(t *Type, v any, _ int) error {
	le := binary.LittleEndian
	switch t.kind {
	case 'b':
		b, ok := v.(bool)
		if !ok {
			return typeErr(t, v)
		}
		if b {
			e.buf = append(e.buf, 1)
		} else {
			e.buf = append(e.buf, 0)
		}
	case 'y':
		b, ok := v.(uint8)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = append(e.buf, b)
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = le.AppendUint16(e.buf, uint16(x))
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = le.AppendUint16(e.buf, x)
	case 'i', 'h':
		x, ok := v.(int32)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = le.AppendUint32(e.buf, uint32(x))
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = le.AppendUint32(e.buf, x)
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = le.AppendUint64(e.buf, uint64(x))
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = le.AppendUint64(e.buf, x)
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = le.AppendUint64(e.buf, math.Float64bits(x))
	case 's', 'o', 'g':
		s, ok := v.(string)
		if !ok {
			return typeErr(t, v)
		}
		if err := checkString(t.kind, s); err != nil {
			return err
		}
		e.buf = append(e.buf, s...)
		e.buf = append(e.buf, 0)
	case 'v':
		vv, ok := v.(Variant)
		if !ok || vv.Type == nil {
			return typeErr(t, v)
		}
		start := len(e.buf)
		if err := e.value(vv.Type, vv.Value, start); err != nil {
			return err
		}
		e.buf = append(e.buf, 0)
		e.buf = append(e.buf, vv.Type.sig...)
	case 'm':
		m, ok := v.(Maybe)
		if !ok {
			return typeErr(t, v)
		}
		if !m.Valid {
			return nil
		}
		if err := e.value(t.elem, m.Value, len(e.buf)); err != nil {
			return err
		}
		if t.elem.fixed == 0 {
			e.buf = append(e.buf, 0)
		}
	case 'a':
		return e.array(t, v)
	case '(':
		tu, ok := v.(Tuple)
		if !ok {
			return typeErr(t, v)
		}
		return e.tuple(t, tu)
	case '{':
		de, ok := v.(DictEntry)
		if !ok {
			return typeErr(t, v)
		}
		return e.tuple(t, Tuple{de.Key, de.Value})
	default:
		return fmt.Errorf("internal error: unknown type %q", t.sig)
	}
	return nil
}

func checkString(kind byte, s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("string %q contains NUL: %w", clip(s), errdefs.ErrInvalid)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("string %q is not valid UTF-8: %w", clip(s), errdefs.ErrInvalid)
	}
	switch kind {
	case 'o':
		if !isObjectPath(s) {
			return fmt.Errorf("object path %q: %w", clip(s), errdefs.ErrInvalid)
		}
	case 'g':
		// A signature is a sequence of D-Bus types: no maybes (GLib's
		// g_variant_serialiser_is_signature).
		if i := strings.IndexFunc(s, func(r rune) bool { return !strings.ContainsRune("ybnqiuxthdvasog(){}", r) }); i >= 0 {
			return fmt.Errorf("signature %q: character %q: %w", clip(s), s[i], errdefs.ErrInvalid)
		}
		for rest := s; rest != ""; {
			_, r, err := parseOne(rest, 0)
			if err != nil {
				return fmt.Errorf("signature %q: %w", clip(s), err)
			}
			rest = r
		}
	}
	return nil
}

// isObjectPath reports whether s is a D-Bus object path: "/" or "/"-separated
// non-empty elements of [A-Za-z0-9_], with no trailing "/".
func isObjectPath(s string) bool {
	if s == "/" {
		return true
	}
	if s == "" || s[0] != '/' || s[len(s)-1] == '/' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '/':
			if s[i-1] == '/' {
				return false
			}
		case c == '_', '0' <= c && c <= '9', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		default:
			return false
		}
	}
	return true
}

func (e *encoder) array(t *Type, v any) error {
	el := t.elem
	if el.kind == 'y' {
		b, ok := v.([]byte)
		if !ok {
			return typeErr(t, v)
		}
		e.buf = append(e.buf, b...)
		return nil
	}
	start := len(e.buf)
	var n int
	var item func(i int) any
	switch xs := v.(type) {
	case []any:
		n, item = len(xs), func(i int) any { return xs[i] }
	case []DictEntry:
		if el.kind != '{' {
			return typeErr(t, v)
		}
		n, item = len(xs), func(i int) any { return xs[i] }
	case []Tuple:
		n, item = len(xs), func(i int) any { return xs[i] }
	case []string:
		n, item = len(xs), func(i int) any { return xs[i] }
	case [][]byte:
		n, item = len(xs), func(i int) any { return xs[i] }
	default:
		return typeErr(t, v)
	}
	if el.fixed > 0 {
		for i := 0; i < n; i++ {
			e.pad(start, el.align)
			if err := e.value(el, item(i), start); err != nil {
				return err
			}
		}
		return nil
	}
	ends := make([]int, 0, n)
	for i := 0; i < n; i++ {
		e.pad(start, el.align)
		if err := e.value(el, item(i), start); err != nil {
			return err
		}
		ends = append(ends, len(e.buf)-start)
	}
	e.offsets(start, ends)
	return nil
}

func (e *encoder) tuple(t *Type, tu Tuple) error {
	if len(tu) != len(t.fields) {
		return fmt.Errorf("tuple of %d values for type %q: %w", len(tu), clip(t.sig), errdefs.ErrInvalid)
	}
	start := len(e.buf)
	if len(t.fields) == 0 {
		e.buf = append(e.buf, 0)
		return nil
	}
	var ends []int
	for i, f := range t.fields {
		e.pad(start, f.align)
		if err := e.value(f, tu[i], start); err != nil {
			return err
		}
		if f.fixed == 0 && i < len(t.fields)-1 {
			ends = append(ends, len(e.buf)-start)
		}
	}
	if t.fixed > 0 {
		e.pad(start, t.align)
		return nil
	}
	for i, j := 0, len(ends)-1; i < j; i, j = i+1, j-1 {
		ends[i], ends[j] = ends[j], ends[i]
	}
	e.offsets(start, ends)
	return nil
}

// offsets appends framing offsets of the smallest width that can address
// the whole container (docs/formats/gvariant.md).
func (e *encoder) offsets(start int, ends []int) {
	if len(ends) == 0 {
		return
	}
	body := len(e.buf) - start
	w := offsetWidth(body, len(ends))
	for _, end := range ends {
		switch w {
		case 1:
			e.buf = append(e.buf, byte(end))
		case 2:
			e.buf = binary.LittleEndian.AppendUint16(e.buf, uint16(end))
		case 4:
			e.buf = binary.LittleEndian.AppendUint32(e.buf, uint32(end))
		default:
			e.buf = binary.LittleEndian.AppendUint64(e.buf, uint64(end))
		}
	}
}

// offsetWidth is the smallest W in 1,2,4,8 with body+n*W addressable by W bytes.
func offsetWidth(body, n int) int {
	for _, w := range []int{1, 2, 4} {
		if uint64(body+n*w) <= (uint64(1)<<(8*w))-1 {
			return w
		}
	}
	return 8
}

// sizeWidth is the offset width a reader derives from a container's size.
func sizeWidth(size int) int {
	switch {
	case size <= 0xff:
		return 1
	case size <= 0xffff:
		return 2
	case uint64(size) <= 0xffffffff:
		return 4
	}
	return 8
}
