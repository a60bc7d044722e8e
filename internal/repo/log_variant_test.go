package repo

import (
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
)

func TestFormatVariant(t *testing.T) {
	t.Parallel()
	v := gvariant.NewVariant
	xattr := func(name, value string) any { return gvariant.Tuple{[]byte(name + "\x00"), []byte(value)} }
	// Expectations follow GLib's g_variant_print(value, TRUE); the peer
	// tier checks the same function against GLib itself.
	for _, tc := range []struct {
		name string
		in   gvariant.Variant
		want string
	}{
		{"string", v("s", "hello"), "'hello'"},
		{"string with quote", v("s", "it's"), `"it's"`},
		{"string escapes", v("s", "a\nb\\c\t"), `'a\nb\\c\t'`},
		{"string control", v("s", "\x01\u200b"), `'\u0001\u200b'`},
		{"string utf-8", v("s", "ünïcödé"), "'ünïcödé'"},
		{"bool", v("b", true), "true"},
		{"byte", v("y", uint8(7)), "byte 0x07"},
		{"int16", v("n", int16(-3)), "int16 -3"},
		{"uint16", v("q", uint16(4)), "uint16 4"},
		{"int32", v("i", int32(-5)), "-5"},
		{"handle", v("h", int32(1)), "handle 1"},
		{"uint32", v("u", uint32(3)), "uint32 3"},
		{"int64", v("x", int64(-7)), "int64 -7"},
		{"uint64", v("t", uint64(42)), "uint64 42"},
		{"double", v("d", 1.5), "1.5"},
		{"double integral", v("d", 3.0), "3.0"},
		{"double inexact", v("d", 0.1), "0.10000000000000001"},
		{"double exponent", v("d", 1e20), "1e+20"},
		{"object path", v("o", "/a/b"), "objectpath '/a/b'"},
		{"signature", v("g", "a{sv}"), "signature 'a{sv}'"},
		{"bytes", v("ay", []byte{1, 2}), "[byte 0x01, 0x02]"},
		{"bytestring", v("ay", []byte("ab\x00")), "b'ab'"},
		{"bytestring with quote", v("ay", []byte("it's\x00")), `b"it's"`},
		{"bytestring escapes", v("ay", []byte("a\n\x7f\"\x00")), `b'a\n\177\"'`},
		{"bytes with inner NUL", v("ay", []byte("a\x00b\x00")), "[byte 0x61, 0x00, 0x62, 0x00]"},
		{"empty bytes", v("ay", []byte{}), "@ay []"},
		{"strings", v("as", []any{"a", "b"}), "['a', 'b']"},
		{"empty strings", v("as", []any{}), "@as []"},
		{"uint32s annotated once", v("au", []any{uint32(1), uint32(2)}), "[uint32 1, 2]"},
		{"dict", v("a{sv}", []gvariant.DictEntry{{Key: "k", Value: v("i", int32(1))}}), "{'k': <1>}"},
		{"dict annotated once", v("a{su}", []gvariant.DictEntry{{Key: "a", Value: uint32(1)}, {Key: "b", Value: uint32(2)}}), "{'a': uint32 1, 'b': 2}"},
		{"empty dict", v("a{sv}", []gvariant.DictEntry{}), "@a{sv} {}"},
		{"variant", v("v", v("s", "x")), "<'x'>"},
		{"variant in variant", v("v", v("v", v("d", 1.5))), "<<1.5>>"},
		{"tuple", v("(us)", gvariant.Tuple{uint32(3), "s"}), "(uint32 3, 's')"},
		{"one-tuple", v("(u)", gvariant.Tuple{uint32(3)}), "(uint32 3,)"},
		{"unit", v("()", gvariant.Tuple{}), "()"},
		{"dict entry", v("{sb}", gvariant.DictEntry{Key: "k", Value: false}), "{'k', false}"},
		{"nothing", v("mi", gvariant.Maybe{}), "@mi nothing"},
		{"just", v("mi", gvariant.Maybe{Valid: true, Value: int32(5)}), "@mi 5"},
		{"just nothing", v("mmi", gvariant.Maybe{Valid: true, Value: gvariant.Maybe{}}), "@mmi just nothing"},
		{"signatures", v("aay", []any{[]byte("ab\x00"), []byte{1}}), "[b'ab', [0x01]]"},
		// ostree ls -X prints xattrs this way.
		{"xattrs", v("a(ayay)", []any{xattr("user.myattr", "value1")}), "[(b'user.myattr', [byte 0x76, 0x61, 0x6c, 0x75, 0x65, 0x31])]"},
		{"no xattrs", v("a(ayay)", []any{}), "@a(ayay) []"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := FormatVariant(tc.in); got != tc.want {
				t.Errorf("FormatVariant(%s %v) = %s, want %s", tc.in.Type, tc.in.Value, got, tc.want)
			}
		})
	}
}
