package gvariant

import (
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/strata-os/strata/internal/errdefs"
)

// Type is a parsed, definite GVariant type such as "(a(say)a(sayay))".
// Types are immutable and safe to share; compare them with String().
type Type struct {
	sig    string
	kind   byte    // the first character of sig
	elem   *Type   // element of 'a' and 'm'
	fields []*Type // members of '(' and '{'
	align  int     // alignment in bytes: 1, 2, 4 or 8
	fixed  int     // serialized size when fixed-size, else 0
}

// String returns the type signature.
func (t *Type) String() string { return t.sig }

// Kind returns the type's first signature character: a basic type code,
// 'a', 'm', 'v', '(' or '{'.
func (t *Type) Kind() byte { return t.kind }

// Elem returns the element type of an array or maybe, else nil.
func (t *Type) Elem() *Type { return t.elem }

// Fields returns the member types of a tuple or dict entry.
func (t *Type) Fields() []*Type { return t.fields }

// Alignment returns the type's alignment in bytes.
func (t *Type) Alignment() int { return t.align }

// FixedSize returns the serialized size of a fixed-size type and true, or
// 0 and false for variable-size types.
func (t *Type) FixedSize() (int, bool) { return t.fixed, t.fixed > 0 }

var (
	typeCache    sync.Map // string -> *Type
	typeCacheLen atomic.Int64
)

// typeCacheMax bounds typeCache: the child types of variants in untrusted
// data are arbitrary signatures, and caching each for good would let the
// data grow the process without limit.
const typeCacheMax = 4096

// ParseType parses one complete, definite type signature.
func ParseType(sig string) (*Type, error) {
	if v, ok := typeCache.Load(sig); ok {
		return v.(*Type), nil
	}
	t, rest, err := parseOne(sig, 0)
	if err != nil {
		return nil, fmt.Errorf("type %q: %w", clip(sig), err)
	}
	if rest != "" {
		return nil, fmt.Errorf("type %q: trailing %q: %w", clip(sig), clip(rest), errdefs.ErrInvalid)
	}
	if typeCacheLen.Load() < typeCacheMax {
		if _, loaded := typeCache.LoadOrStore(sig, t); !loaded {
			typeCacheLen.Add(1)
		}
	}
	return t, nil
}

// MustType is ParseType for signatures known at compile time; it panics on
// a malformed signature.
func MustType(sig string) *Type {
	t, err := ParseType(sig)
	if err != nil {
		panic("internal error: " + err.Error())
	}
	return t
}

// maxDepth bounds type nesting, like GLib's G_VARIANT_MAX_RECURSION_DEPTH.
const maxDepth = 128

func parseOne(s string, depth int) (*Type, string, error) {
	if depth > maxDepth {
		return nil, "", fmt.Errorf("nesting deeper than %d: %w", maxDepth, errdefs.ErrInvalid)
	}
	if s == "" {
		return nil, "", fmt.Errorf("unexpected end: %w", errdefs.ErrInvalid)
	}
	c := s[0]
	switch c {
	case 'b', 'y':
		return basic(c, 1, 1), s[1:], nil
	case 'n', 'q':
		return basic(c, 2, 2), s[1:], nil
	case 'i', 'u', 'h':
		return basic(c, 4, 4), s[1:], nil
	case 'x', 't', 'd':
		return basic(c, 8, 8), s[1:], nil
	case 's', 'o', 'g':
		return basic(c, 1, 0), s[1:], nil
	case 'v':
		return basic(c, 8, 0), s[1:], nil
	case 'a', 'm':
		e, rest, err := parseOne(s[1:], depth+1)
		if err != nil {
			return nil, "", err
		}
		sig := s[:len(s)-len(rest)]
		return &Type{sig: sig, kind: c, elem: e, align: e.align}, rest, nil
	case '(':
		rest := s[1:]
		var fields []*Type
		for {
			if rest == "" {
				return nil, "", fmt.Errorf("unterminated tuple: %w", errdefs.ErrInvalid)
			}
			if rest[0] == ')' {
				rest = rest[1:]
				break
			}
			f, r, err := parseOne(rest, depth+1)
			if err != nil {
				return nil, "", err
			}
			fields = append(fields, f)
			rest = r
		}
		return container(c, s[:len(s)-len(rest)], fields), rest, nil
	case '{':
		k, rest, err := parseOne(s[1:], depth+1)
		if err != nil {
			return nil, "", err
		}
		if !k.isBasic() {
			return nil, "", fmt.Errorf("dict entry key %q is not a basic type: %w", clip(k.sig), errdefs.ErrInvalid)
		}
		v, rest, err := parseOne(rest, depth+1)
		if err != nil {
			return nil, "", err
		}
		if rest == "" || rest[0] != '}' {
			return nil, "", fmt.Errorf("dict entry needs exactly two types: %w", errdefs.ErrInvalid)
		}
		rest = rest[1:]
		return container(c, s[:len(s)-len(rest)], []*Type{k, v}), rest, nil
	}
	return nil, "", fmt.Errorf("unknown type character %q: %w", c, errdefs.ErrInvalid)
}

func basic(c byte, align, fixed int) *Type {
	return &Type{sig: string(c), kind: c, align: align, fixed: fixed}
}

func (t *Type) isBasic() bool {
	switch t.kind {
	case 'a', 'm', 'v', '(', '{':
		return false
	}
	return true
}

// container computes alignment and fixed size of a tuple or dict entry: the
// members laid out with padding, rounded up to the alignment; "()" is 1 byte.
func container(kind byte, sig string, fields []*Type) *Type {
	t := &Type{sig: sig, kind: kind, fields: fields, align: 1}
	fixed := true
	off := 0
	for _, f := range fields {
		if f.align > t.align {
			t.align = f.align
		}
		if f.fixed == 0 {
			fixed = false
			continue
		}
		off = alignUp(off, f.align) + f.fixed
	}
	if fixed {
		if len(fields) == 0 {
			t.fixed = 1
		} else {
			t.fixed = alignUp(off, t.align)
		}
	}
	return t
}

func alignUp(n, a int) int { return (n + a - 1) &^ (a - 1) }

// clip shortens a string quoted in an error message: strings and signatures
// from the data can be megabytes long.
func clip(s string) string {
	const limit = 64
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "…"
}
