package gvariant_test

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

// marshalTests are values in the Go representation Unmarshal returns, with
// their normal-form serialization worked out by hand from
// docs/formats/gvariant.md.
var marshalTests = []struct {
	name string
	sig  string
	val  any
	want []byte
}{
	// Basic types: fixed size, little-endian.
	{"bool false", "b", false, bs(0x00)},
	{"bool true", "b", true, bs(0x01)},
	{"byte 0", "y", uint8(0), bs(0x00)},
	{"byte ff", "y", uint8(0xff), bs(0xff)},
	{"int16 -2", "n", int16(-2), bs(0xfe, 0xff)},
	{"int16 min", "n", int16(math.MinInt16), bs(0x00, 0x80)},
	{"uint16", "q", uint16(0xbeef), bs(0xef, 0xbe)},
	{"int32 -5", "i", int32(-5), bs(0xfb, 0xff, 0xff, 0xff)},
	{"int32 max", "i", int32(math.MaxInt32), bs(0xff, 0xff, 0xff, 0x7f)},
	{"handle", "h", int32(3), bs(0x03, 0, 0, 0)},
	{"uint32", "u", uint32(0xdeadbeef), bs(0xef, 0xbe, 0xad, 0xde)},
	{"int64 -2", "x", int64(-2), hx("feffffffffffffff")},
	{"int64 min", "x", int64(math.MinInt64), hx("0000000000000080")},
	{"uint64", "t", uint64(0x0102030405060708), hx("0807060504030201")},
	{"uint64 max", "t", uint64(math.MaxUint64), hx("ffffffffffffffff")},
	{"double 1", "d", 1.0, hx("000000000000f03f")},
	{"double -0", "d", math.Copysign(0, -1), hx("0000000000000080")},
	{"double +inf", "d", math.Inf(1), hx("000000000000f07f")},
	{"double NaN", "d", math.NaN(), hx("010000000000f87f")},

	// Strings: bytes and a NUL terminator.
	{"string empty", "s", "", bs(0x00)},
	{"string", "s", "hello", bs("hello", 0)},
	{"string UTF-8", "s", "é€😀", bs(0xc3, 0xa9, 0xe2, 0x82, 0xac, 0xf0, 0x9f, 0x98, 0x80, 0)},
	{"object path root", "o", "/", bs("/", 0)},
	{"object path", "o", "/org/gtk_2/A9", bs("/org/gtk_2/A9", 0)},
	{"signature empty", "g", "", bs(0)},
	{"signature one type", "g", "a{sv}", bs("a{sv}", 0)},
	{"signature several types", "g", "(ii)as{yv}", bs("(ii)as{yv}", 0)},

	// Variants: child data, NUL, child type.
	{"variant uint32", "v", v("u", uint32(5)), bs(5, 0, 0, 0, 0, "u")},
	{"variant empty string", "v", v("s", ""), bs(0, 0, "s")},
	{"variant unit", "v", v("()", gvariant.Tuple{}), bs(0, 0, "()")},
	{"variant array", "v", v("as", []any{"a"}), bs("a", 0, 2, 0, "as")},
	{"variant empty array", "v", v("ax", []any{}), bs(0, "ax")},
	{"variant nested", "v", v("v", v("b", true)), bs(1, 0, "b", 0, "v")},
	{"variant nested twice", "v", v("v", v("v", v("y", uint8(7)))), bs(7, 0, "y", 0, "v", 0, "v")},
	{"variant of maybe nothing", "v", v("ms", nothing), bs(0, "ms")},
	{"variant aligned in tuple", "(yv)", gvariant.Tuple{uint8(1), v("y", uint8(2))},
		bs(1, 0, 0, 0, 0, 0, 0, 0, 2, 0, "y")},
	{"variant in tuple before string", "(vs)", gvariant.Tuple{v("q", uint16(0x0102)), "z"},
		bs(0x02, 0x01, 0, "q", "z", 0, 4)},

	// Maybes: Nothing is empty; Just of a fixed type is its data; Just of a
	// variable type is its data and a NUL.
	{"maybe byte nothing", "my", nothing, nil},
	{"maybe byte just", "my", just(uint8(7)), bs(7)},
	{"maybe uint32 just", "mu", just(uint32(1)), bs(1, 0, 0, 0)},
	{"maybe tuple just", "m(yu)", just(gvariant.Tuple{uint8(1), uint32(2)}), bs(1, 0, 0, 0, 2, 0, 0, 0)},
	{"maybe unit just", "m()", just(gvariant.Tuple{}), bs(0)},
	{"maybe string nothing", "ms", nothing, nil},
	{"maybe string just empty", "ms", just(""), bs(0, 0)},
	{"maybe string just", "ms", just("ab"), bs("ab", 0, 0)},
	{"maybe array just empty", "mas", just([]any{}), bs(0)},
	{"maybe maybe nothing", "mmy", nothing, nil},
	{"maybe maybe just nothing", "mmy", just(nothing), bs(0)},
	{"maybe maybe just just", "mmy", just(just(uint8(5))), bs(5, 0)},
	{"maybe variant", "mv", just(v("y", uint8(1))), bs(1, 0, "y", 0)},
	{"maybe in tuple", "(msmu)", gvariant.Tuple{just("a"), just(uint32(9))}, bs("a", 0, 0, 0, 9, 0, 0, 0, 3)},

	// Arrays of fixed-size elements: concatenation, no offsets.
	{"bytes empty", "ay", []byte(nil), nil},
	{"bytes", "ay", []byte{1, 2, 3}, bs(1, 2, 3)},
	{"bytes with NUL", "ay", []byte{0, 0}, bs(0, 0)},
	{"uint32 array", "au", []any{uint32(1), uint32(2)}, bs(1, 0, 0, 0, 2, 0, 0, 0)},
	{"int64 array empty", "ax", []any{}, nil},
	{"int64 array", "ax", []any{int64(-1)}, hx("ffffffffffffffff")},
	{"bool array", "ab", []any{true, false}, bs(1, 0)},
	{"tuple array", "a(yu)", []any{gvariant.Tuple{uint8(1), uint32(2)}, gvariant.Tuple{uint8(3), uint32(4)}},
		bs(1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0)},
	{"unit array", "a()", []any{gvariant.Tuple{}, gvariant.Tuple{}}, bs(0, 0)},
	{"fixed dict", "a{yq}", []gvariant.DictEntry{{Key: uint8(1), Value: uint16(0x0203)}}, bs(1, 0, 3, 2)},

	// Arrays of variable-size elements: aligned elements, then their end
	// offsets in element order.
	{"string array empty", "as", []any{}, nil},
	{"string array", "as", []any{"a", "bc", ""}, bs("a", 0, "bc", 0, 0, 2, 5, 6)},
	{"byte array array", "aay", []any{[]byte{1}, []byte(nil), []byte{2, 3}}, bs(1, 2, 3, 1, 1, 3)},
	{"byte array array of empties", "aay", []any{[]byte(nil), []byte(nil)}, bs(0, 0)},
	{"string array array", "aas", []any{[]any{}, []any{"x"}}, bs("x", 0, 2, 0, 3)},
	{"maybe array", "amy", []any{just(uint8(1)), nothing, just(uint8(2))}, bs(1, 2, 1, 1, 2)},
	{"variable tuple array", "a(sy)", []any{gvariant.Tuple{"a", uint8(5)}, gvariant.Tuple{"", uint8(6)}},
		bs("a", 0, 5, 2, 0, 6, 1, 4, 7)},
	{"string dict", "a{ss}", []gvariant.DictEntry{{Key: "k", Value: "v"}}, bs("k", 0, "v", 0, 2, 5)},
	{"dict empty", "a{sv}", []gvariant.DictEntry{}, nil},
	{"dict aligned entries", "a{sv}", []gvariant.DictEntry{
		{Key: "a", Value: v("y", uint8(1))},
		{Key: "b", Value: v("y", uint8(2))},
	}, bs(
		"a", 0, 0, 0, 0, 0, 0, 0, 1, 0, "y", 2, // entry 0: 0..12
		0, 0, 0, 0, // pad to 16
		"b", 0, 0, 0, 0, 0, 0, 0, 2, 0, "y", 2, // entry 1: 16..28
		12, 28)},
	{"variant array", "av", []any{v("y", uint8(1)), v("s", "")}, bs(1, 0, "y", 0, 0, 0, 0, 0, 0, 0, "s", 3, 11)},

	// Tuples: aligned members, non-last variable members' ends reversed at
	// the end; fixed-size tuples padded to their alignment.
	{"unit", "()", gvariant.Tuple{}, bs(0)},
	{"unit in tuple", "(())", gvariant.Tuple{gvariant.Tuple{}}, bs(0)},
	{"two units", "(()())", gvariant.Tuple{gvariant.Tuple{}, gvariant.Tuple{}}, bs(0, 0)},
	{"two bytes", "(yy)", gvariant.Tuple{uint8(1), uint8(2)}, bs(1, 2)},
	{"byte then uint32", "(yu)", gvariant.Tuple{uint8(1), uint32(2)}, bs(1, 0, 0, 0, 2, 0, 0, 0)},
	{"uint32 then byte", "(uy)", gvariant.Tuple{uint32(1), uint8(2)}, bs(1, 0, 0, 0, 2, 0, 0, 0)},
	{"uint64 then byte", "(ty)", gvariant.Tuple{uint64(1), uint8(2)}, bs(1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0)},
	{"one string", "(s)", gvariant.Tuple{"x"}, bs("x", 0)},
	{"three strings", "(sss)", gvariant.Tuple{"a", "b", "c"}, bs("a", 0, "b", 0, "c", 0, 4, 2)},
	{"string then byte", "(sy)", gvariant.Tuple{"a", uint8(5)}, bs("a", 0, 5, 2)},
	{"byte then string", "(ys)", gvariant.Tuple{uint8(5), "a"}, bs(5, "a", 0)},
	{"empty array only", "(as)", gvariant.Tuple{[]any{}}, nil},
	{"empty arrays", "(asas)", gvariant.Tuple{[]any{}, []any{}}, bs(0)},
	{"string then uint64", "(st)", gvariant.Tuple{"ab", uint64(1)}, bs("ab", 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 3)},
	{"nested variable tuple", "((sy)s)", gvariant.Tuple{gvariant.Tuple{"a", uint8(5)}, "b"}, bs("a", 0, 5, 2, "b", 0, 4)},

	// Dict entries outside arrays are 2-tuples.
	{"dict entry fixed", "{yy}", gvariant.DictEntry{Key: uint8(1), Value: uint8(2)}, bs(1, 2)},
	{"dict entry sv", "{sv}", gvariant.DictEntry{Key: "k", Value: v("u", uint32(5))},
		bs("k", 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, "u", 2)},
	{"dict entry ts", "{ts}", gvariant.DictEntry{Key: uint64(1), Value: "a"}, bs(1, 0, 0, 0, 0, 0, 0, 0, "a", 0)},
	{"dict entry ss", "{ss}", gvariant.DictEntry{Key: "", Value: ""}, bs(0, 0, 1)},
}

func TestMarshal(t *testing.T) {
	t.Parallel()
	for _, tc := range marshalTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ := gvariant.MustType(tc.sig)
			got, err := gvariant.Marshal(typ, tc.val)
			if err != nil {
				t.Fatalf("Marshal(%s, %#v) error: %v", tc.sig, tc.val, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Marshal(%s, %#v) = %x, want %x", tc.sig, tc.val, got, tc.want)
			}
			roundTrip(t, typ, tc.val)
		})
	}
}

// TestAppendMarshal checks that a value appended after 8-aligned data is
// laid out as if it started the buffer.
func TestAppendMarshal(t *testing.T) {
	t.Parallel()
	prefix := []byte("PREFIX!!") // 8 bytes
	for _, tc := range marshalTests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := gvariant.AppendMarshal(bytes.Clone(prefix), gvariant.MustType(tc.sig), tc.val)
			if err != nil {
				t.Fatalf("AppendMarshal(%q, %s, %#v) error: %v", prefix, tc.sig, tc.val, err)
			}
			if want := bs(prefix, tc.want); !bytes.Equal(got, want) {
				t.Errorf("AppendMarshal(%q, %s, %#v) = %x, want %x", prefix, tc.sig, tc.val, got, want)
			}
		})
	}
}

func TestAppendMarshalUnaligned(t *testing.T) {
	t.Parallel()
	got, err := gvariant.AppendMarshal([]byte{1, 2, 3}, gvariant.MustType("u"), uint32(1))
	if err == nil {
		t.Errorf("AppendMarshal(3 bytes, u, 1) = %x, nil, want an error", got)
	}
}

// TestMarshalGoForms checks the other Go slices Marshal accepts for arrays.
func TestMarshalGoForms(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sig  string
		val  any
		want any // the same value in the form Unmarshal returns
	}{
		{"strings", "as", []string{"a", "bc"}, []any{"a", "bc"}},
		{"byte slices", "aay", [][]byte{{1}, {2, 3}}, []any{[]byte{1}, []byte{2, 3}}},
		{"tuples", "a(say)", []gvariant.Tuple{{"a", []byte{1}}}, []any{gvariant.Tuple{"a", []byte{1}}}},
		{"dict entries in []any", "a{sv}", []any{gvariant.DictEntry{Key: "k", Value: v("b", true)}},
			[]gvariant.DictEntry{{Key: "k", Value: v("b", true)}}},
		{"nil dict", "a{sv}", []gvariant.DictEntry(nil), []gvariant.DictEntry{}},
		{"nil []any", "as", []any(nil), []any{}},
		{"nil tuple", "()", gvariant.Tuple(nil), gvariant.Tuple{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ := gvariant.MustType(tc.sig)
			got, err := gvariant.Marshal(typ, tc.val)
			if err != nil {
				t.Fatalf("Marshal(%s, %#v) error: %v", tc.sig, tc.val, err)
			}
			want, err := gvariant.Marshal(typ, tc.want)
			if err != nil {
				t.Fatalf("Marshal(%s, %#v) error: %v", tc.sig, tc.want, err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Marshal(%s, %#v) = %x, want %x", tc.sig, tc.val, got, want)
			}
			roundTrip(t, typ, tc.want)
		})
	}
}

// TestOffsetWidths checks containers on both sides of the offset-width
// boundaries (docs/formats/gvariant.md): W is the smallest of 1, 2, 4 with
// body + n·W ≤ 2^(8W)−1. A container with offsets is never exactly 256 or
// 65536 bytes: once body + n > 255 the size is body + 2n ≥ 257.
func TestOffsetWidths(t *testing.T) {
	t.Parallel()
	a := func(n int) string { return strings.Repeat("a", n) }
	b := func(n int) string { return strings.Repeat("b", n) }
	tests := []struct {
		name string
		sig  string
		val  any
		want []byte
	}{
		{"array 255 bytes, 1-byte offset", "as", []any{a(253)},
			bs(a(253), 0, 0xfe)},
		{"array 257 bytes, 2-byte offset", "as", []any{a(254)},
			bs(a(254), 0, 0xff, 0x00)},
		{"array of two 255 bytes", "as", []any{a(126), b(125)},
			bs(a(126), 0, b(125), 0, 0x7f, 0xfd)},
		{"array of two 258 bytes", "as", []any{a(126), b(126)},
			bs(a(126), 0, b(126), 0, 0x7f, 0x00, 0xfe, 0x00)},
		{"tuple 255 bytes, 1-byte offset", "(ss)", gvariant.Tuple{a(251), "b"},
			bs(a(251), 0, "b", 0, 0xfc)},
		{"tuple 257 bytes, 2-byte offset", "(ss)", gvariant.Tuple{a(251), "bb"},
			bs(a(251), 0, "bb", 0, 0xfc, 0x00)},
		{"tuple 256 bytes without offsets", "(ys)", gvariant.Tuple{uint8(9), a(254)},
			bs(9, a(254), 0)},
		{"byte array 256 bytes", "ay", []byte(a(256)), bs(a(256))},
		{"array 65535 bytes, 2-byte offset", "as", []any{a(65532)},
			bs(a(65532), 0, 0xfd, 0xff)},
		{"array 65538 bytes, 4-byte offset", "as", []any{a(65533)},
			bs(a(65533), 0, 0xfe, 0xff, 0x00, 0x00)},
		{"tuple 65535 bytes, 2-byte offset", "(ss)", gvariant.Tuple{a(65530), "b"},
			bs(a(65530), 0, "b", 0, 0xfb, 0xff)},
		{"tuple 65538 bytes, 4-byte offset", "(ss)", gvariant.Tuple{a(65530), "bb"},
			bs(a(65530), 0, "bb", 0, 0xfb, 0xff, 0x00, 0x00)},
		{"tuple 65536 bytes without offsets", "(ys)", gvariant.Tuple{uint8(9), a(65534)},
			bs(9, a(65534), 0)},
		{"dict entry 255 bytes", "{sv}", gvariant.DictEntry{Key: "k", Value: v("s", a(243))},
			bs("k", 0, 0, 0, 0, 0, 0, 0, a(243), 0, 0, "s", 0x02)},
		{"dict entry 257 bytes", "{sv}", gvariant.DictEntry{Key: "k", Value: v("s", a(244))},
			bs("k", 0, 0, 0, 0, 0, 0, 0, a(244), 0, 0, "s", 0x02, 0x00)},
		// Each container picks its own width: the outer tuple needs 2 bytes,
		// the array inside it 1 (like the dirtree tree1:/ of docs/formats/gvariant.md).
		{"nested: small array in big tuple", "(ass)", gvariant.Tuple{[]any{"x"}, a(300)},
			bs("x", 0, 0x02, a(300), 0, 0x03, 0x00)},
		// ... and the other way round: elements of a big array keep 1-byte
		// offsets while the second element itself needs 2.
		{"nested: big array of arrays", "aas", []any{[]any{"x"}, []any{b(300)}},
			bs("x", 0, 0x02, b(300), 0, 0x2d, 0x01, 0x03, 0x00, 0x32, 0x01)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ := gvariant.MustType(tc.sig)
			got, err := gvariant.Marshal(typ, tc.val)
			if err != nil {
				t.Fatalf("Marshal(%s, …) error: %v", tc.sig, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Marshal(%s, …) = %d bytes ending %x, want %d bytes ending %x",
					tc.sig, len(got), tail(got), len(tc.want), tail(tc.want))
			}
			roundTrip(t, typ, tc.val)
		})
	}
}

// tail returns the last bytes of b, where the offsets are.
func tail(b []byte) []byte { return b[max(0, len(b)-12):] }

func TestMarshalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sig  string
		val  any
	}{
		{"bool as int", "b", 1},
		{"byte as int", "y", 1},
		{"byte as int8", "y", int8(1)},
		{"int16 as int32", "n", int32(1)},
		{"uint16 as int", "q", 1},
		{"int32 as uint32", "i", uint32(1)},
		{"handle as int", "h", 1},
		{"uint32 as int32", "u", int32(1)},
		{"int64 as int", "x", 1},
		{"uint64 as int64", "t", int64(1)},
		{"double as float32", "d", float32(1)},
		{"string as bytes", "s", []byte("x")},
		{"string as nil", "s", nil},
		{"string with NUL", "s", "a\x00b"},
		{"string invalid UTF-8", "s", "\xff"},
		{"string overlong NUL", "s", "\xc0\x80"},
		{"string surrogate", "s", "\xed\xa0\x80"},
		{"object path empty", "o", ""},
		{"object path relative", "o", "a"},
		{"object path trailing slash", "o", "/a/"},
		{"object path double slash", "o", "//"},
		{"object path empty element", "o", "/a//b"},
		{"object path dash", "o", "/a-b"},
		{"object path non-ASCII", "o", "/é"},
		{"signature maybe", "g", "ms"},
		{"signature incomplete array", "g", "a"},
		{"signature unterminated", "g", "("},
		{"signature variant key", "g", "{vs}"},
		{"signature indefinite", "g", "r"},
		{"signature unknown", "g", "z"},
		{"signature with NUL", "g", "s\x00"},
		{"variant as value", "v", uint32(1)},
		{"variant without type", "v", gvariant.Variant{Value: uint32(1)}},
		{"variant value mismatch", "v", v("u", "x")},
		{"variant pointer", "v", &gvariant.Variant{Type: gvariant.MustType("y"), Value: uint8(1)}},
		{"maybe as nil", "ms", nil},
		{"maybe as value", "my", uint8(1)},
		{"maybe just wrong type", "my", just(1)},
		{"maybe just nil", "mv", just(nil)},
		{"bytes as string", "ay", "abc"},
		{"bytes as []any", "ay", []any{uint8(1)}},
		{"array as map", "a{sv}", map[string]gvariant.Variant{}},
		{"array as []int", "au", []int{1}},
		{"array element wrong type", "au", []any{uint32(1), int32(2)}},
		{"variable array element wrong type", "as", []any{"a", 1}},
		{"array of strings wrong element", "as", []string{"a\x00"}},
		{"dict entries for non-dict array", "a(sv)", []gvariant.DictEntry{{Key: "k", Value: v("y", uint8(1))}}},
		{"dict entry as tuple", "a{sv}", []any{gvariant.Tuple{"k", v("y", uint8(1))}}},
		{"dict key wrong type", "a{sv}", []gvariant.DictEntry{{Key: 1, Value: v("y", uint8(1))}}},
		{"dict value not variant", "a{sv}", []gvariant.DictEntry{{Key: "k", Value: uint8(1)}}},
		{"tuple as []any", "(yy)", []any{uint8(1), uint8(2)}},
		{"tuple too short", "(yy)", gvariant.Tuple{uint8(1)}},
		{"tuple too long", "(yy)", gvariant.Tuple{uint8(1), uint8(2), uint8(3)}},
		{"unit with member", "()", gvariant.Tuple{uint8(1)}},
		{"tuple member wrong type", "(ys)", gvariant.Tuple{uint8(1), 2}},
		{"dict entry as tuple value", "{ss}", gvariant.Tuple{"a", "b"}},
		{"nested error", "(a{sv}as)", gvariant.Tuple{[]gvariant.DictEntry{{Key: "k", Value: v("as", []any{"ok", "\xff"})}}, []any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := gvariant.Marshal(gvariant.MustType(tc.sig), tc.val)
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Marshal(%s, %#v) = %x, %v, want an error wrapping ErrInvalid", tc.sig, tc.val, got, err)
			}
		})
	}
}
