package gvariant_test

import (
	"encoding/hex"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/gvariant"
)

// cmpOpts compares decoded values: types by signature (a *Type has only
// unexported fields) and doubles by their bits, so that NaN equals itself and
// -0 differs from +0.
var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b *gvariant.Type) bool {
		if a == nil || b == nil {
			return a == b
		}
		return a.String() == b.String()
	}),
	cmp.Comparer(func(a, b float64) bool { return math.Float64bits(a) == math.Float64bits(b) }),
}

// bs concatenates byte-string pieces: a string is taken as raw bytes, an int
// as one byte, a []byte as is.
func bs(parts ...any) []byte {
	var out []byte
	for _, p := range parts {
		switch p := p.(type) {
		case string:
			out = append(out, p...)
		case int:
			if p < 0 || p > 0xff {
				panic(fmt.Sprintf("bs: %d is not a byte", p))
			}
			out = append(out, byte(p))
		case []byte:
			out = append(out, p...)
		default:
			panic(fmt.Sprintf("bs: unsupported piece %T", p))
		}
	}
	return out
}

// hx decodes hex digits, ignoring spaces and newlines.
func hx(s string) []byte {
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		panic(err)
	}
	return b
}

// v is gvariant.NewVariant, short for the tables.
func v(sig string, x any) gvariant.Variant { return gvariant.NewVariant(sig, x) }

// just is a present maybe value.
func just(x any) gvariant.Maybe { return gvariant.Maybe{Valid: true, Value: x} }

// nothing is an absent maybe value.
var nothing = gvariant.Maybe{}

// roundTrip checks that Marshal(t, val) is in normal form and decodes back
// to val.
func roundTrip(t *testing.T, typ *gvariant.Type, val any) []byte {
	t.Helper()
	b, err := gvariant.Marshal(typ, val)
	if err != nil {
		t.Fatalf("Marshal(%s, %#v) error: %v", typ, val, err)
	}
	got, err := gvariant.Unmarshal(typ, b)
	if err != nil {
		t.Fatalf("Unmarshal(%s, %x) error: %v", typ, b, err)
	}
	if diff := cmp.Diff(val, got, cmpOpts); diff != "" {
		t.Fatalf("Unmarshal(%s, Marshal(v)) differs from v (-want +got):\n%s", typ, diff)
	}
	if !gvariant.IsNormal(typ, b) {
		t.Fatalf("IsNormal(%s, %x) = false, want true", typ, b)
	}
	if n, ok := typ.FixedSize(); ok && len(b) != n {
		t.Fatalf("len(Marshal(%s, …)) = %d, want its fixed size %d", typ, len(b), n)
	}
	return b
}
