package gvariant_test

import (
	"math"
	"strings"

	"github.com/strata-os/strata/internal/gvariant"
)

// A generator makes random GVariant types and values in the Go
// representation Unmarshal returns, so that a decoded value compares equal to
// the generated one. It draws from a source: math/rand/v2 for the seeded
// GLib comparison, fuzz bytes for FuzzMarshalRoundTrip. An exhausted byte
// source returns zeros, and choice 0 is always the one that ends recursion.
type generator struct {
	src      source
	maxDepth int // deepest container nesting, variants included
	// big is how many bytes arrays may still spend on being big (hundreds
	// of bytes or more than 64 KiB, for 2- and 4-byte offsets); 0 for none.
	big int
}

// source is the part of *rand.Rand a generator uses.
type source interface {
	IntN(n int) int
	Uint64() uint64
}

// byteSource draws from fuzz input; once the input is used up it returns
// zeros.
type byteSource struct{ b []byte }

func (s *byteSource) next() byte {
	if len(s.b) == 0 {
		return 0
	}
	c := s.b[0]
	s.b = s.b[1:]
	return c
}

func (s *byteSource) IntN(n int) int {
	if n <= 256 {
		return int(s.next()) % n
	}
	return (int(s.next()) | int(s.next())<<8 | int(s.next())<<16) % n
}

func (s *byteSource) Uint64() uint64 {
	var x uint64
	for i := range 8 {
		x |= uint64(s.next()) << (8 * i)
	}
	return x
}

// basicTypes are the type codes a dict entry key may have.
const basicTypes = "bynqiuxthdsog"

func (g *generator) pick(s string) byte { return s[g.src.IntN(len(s))] }

// typeSig returns a random definite type nested at most maxDepth-depth deep.
// With dbus set it makes no maybes, as in a signature ("g") value.
func (g *generator) typeSig(depth int, dbus bool) string {
	if depth >= g.maxDepth {
		return string(g.pick(basicTypes))
	}
	switch g.src.IntN(11) {
	case 5:
		return "v"
	case 6:
		if !dbus {
			return "m" + g.typeSig(depth+1, dbus)
		}
		return "a" + g.typeSig(depth+1, dbus)
	case 7:
		return "a" + g.typeSig(depth+1, dbus)
	case 8:
		return "a{" + string(g.pick(basicTypes)) + g.typeSig(depth+1, dbus) + "}"
	case 9:
		var b strings.Builder
		b.WriteByte('(')
		for range g.src.IntN(5) {
			b.WriteString(g.typeSig(depth+1, dbus))
		}
		b.WriteByte(')')
		return b.String()
	case 10:
		return "{" + string(g.pick(basicTypes)) + g.typeSig(depth+1, dbus) + "}"
	}
	return string(g.pick(basicTypes))
}

// integer returns 64 random bits, often a value at the edge of some width.
func (g *generator) integer() uint64 {
	specials := []uint64{
		0, 1, math.MaxUint64, 0x7f, 0x80, 0xff, 0x7fff, 0x8000, 0xffff,
		0x7fffffff, 0x80000000, 0xffffffff, math.MaxInt64, 1 << 63,
	}
	if i := g.src.IntN(2 * len(specials)); i < len(specials) {
		return specials[i]
	}
	return g.src.Uint64()
}

func (g *generator) double() float64 {
	specials := []float64{
		0, math.Copysign(0, -1), 1, -1.5, math.Inf(1), math.Inf(-1), math.NaN(),
		math.MaxFloat64, math.SmallestNonzeroFloat64, 1e-300, 0.1,
	}
	if i := g.src.IntN(2 * len(specials)); i < len(specials) {
		return specials[i]
	}
	f := math.Float64frombits(g.src.Uint64())
	if math.IsNaN(f) {
		return math.NaN() // one NaN only: peers may quiet signalling ones
	}
	return f
}

var stringPieces = []string{"a", "b", "z", "0", " ", "é", "€", "😀", "\t", "\n", `"`, `\`, "'", "/", "{", "\x7f", "\u2028"}

func (g *generator) str(n int) string {
	var b strings.Builder
	for range n {
		b.WriteString(stringPieces[g.src.IntN(len(stringPieces))])
	}
	return b.String()
}

const objectPathChars = "abcxyzABCXYZ0189_"

func (g *generator) objectPath() string {
	var b strings.Builder
	for range g.src.IntN(4) {
		b.WriteByte('/')
		for range 1 + g.src.IntN(4) {
			b.WriteByte(g.pick(objectPathChars))
		}
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

func (g *generator) signature() string {
	var b strings.Builder
	for range g.src.IntN(4) {
		b.WriteString(g.typeSig(max(0, g.maxDepth-2), true))
	}
	return b.String()
}

// randomValue returns a random type and a value of it.
func (g *generator) randomValue() (*gvariant.Type, any) {
	t := gvariant.MustType(g.typeSig(0, false))
	return t, g.value(t, 0)
}

// value returns a random value of type t, which sits depth containers deep.
func (g *generator) value(t *gvariant.Type, depth int) any {
	switch t.Kind() {
	case 'b':
		return g.src.IntN(2) == 1
	case 'y':
		return uint8(g.integer())
	case 'n':
		return int16(g.integer())
	case 'q':
		return uint16(g.integer())
	case 'i', 'h':
		return int32(g.integer())
	case 'u':
		return uint32(g.integer())
	case 'x':
		return int64(g.integer())
	case 't':
		return g.integer()
	case 'd':
		return g.double()
	case 's':
		return g.str(g.src.IntN(8))
	case 'o':
		return g.objectPath()
	case 'g':
		return g.signature()
	case 'v':
		child := gvariant.MustType(g.typeSig(depth+1, false))
		return gvariant.Variant{Type: child, Value: g.value(child, depth+1)}
	case 'm':
		if g.src.IntN(3) == 0 {
			return gvariant.Maybe{}
		}
		return gvariant.Maybe{Valid: true, Value: g.value(t.Elem(), depth+1)}
	case 'a':
		return g.array(t, depth)
	case '(':
		tu := make(gvariant.Tuple, len(t.Fields()))
		for i, f := range t.Fields() {
			tu[i] = g.value(f, depth+1)
		}
		return tu
	case '{':
		return gvariant.DictEntry{Key: g.value(t.Fields()[0], depth+1), Value: g.value(t.Fields()[1], depth+1)}
	}
	panic("generator: unknown type " + t.String())
}

// array returns a random array: usually a few elements, but while the big
// budget lasts sometimes one of a few hundred bytes or more than 64 KiB.
func (g *generator) array(t *gvariant.Type, depth int) any {
	el := t.Elem()
	n, target := g.src.IntN(5), 0
	if g.big > 0 && g.src.IntN(4) == 3 {
		target = 200 + g.src.IntN(200)
		if g.src.IntN(3) == 2 {
			target = 65536 + g.src.IntN(8192)
		}
		target = min(target, g.big)
		g.big -= target
		n = math.MaxInt
	}
	if el.Kind() == 'y' {
		if target > 0 {
			n = target
		}
		if n == 0 {
			return []byte(nil)
		}
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(g.src.Uint64())
		}
		return b
	}
	// Elements of a big array are small: the budget is spent on length.
	if target > 0 {
		saved := g.big
		g.big = 0
		defer func() { g.big = saved }()
	}

	var elems []any
	size := 0
	for len(elems) < n && (target == 0 || size < target) {
		e := g.value(el, depth+1)
		if target > 0 {
			b, err := gvariant.Marshal(el, e)
			if err != nil {
				panic("generator: " + err.Error())
			}
			size += max(len(b), 1) // every variable-size element takes an offset
		}
		elems = append(elems, e)
	}
	if el.Kind() == '{' {
		out := make([]gvariant.DictEntry, len(elems))
		for i, e := range elems {
			out[i] = e.(gvariant.DictEntry)
		}
		return out
	}
	if elems == nil {
		elems = []any{}
	}
	return elems
}
