package gvariant_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

func TestUnmarshalErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		sig  string
		data []byte
	}{
		{"bool 2", "b", bs(2)},
		{"bool empty", "b", nil},
		{"byte empty", "y", nil},
		{"byte too long", "y", bs(1, 2)},
		{"uint32 short", "u", bs(1, 2, 3)},
		{"uint64 long", "t", make([]byte, 9)},
		{"fixed tuple short", "(yu)", make([]byte, 7)},
		{"unit empty", "()", nil},
		{"unit long", "()", bs(0, 0)},

		{"string empty", "s", nil},
		{"string unterminated", "s", bs("ab")},
		{"string inner NUL", "s", bs("a", 0, "b", 0)},
		{"string invalid UTF-8", "s", bs(0xff, 0)},
		{"string overlong", "s", bs(0xc0, 0x80, 0)},
		{"string surrogate", "s", bs(0xed, 0xa0, 0x80, 0)},
		{"string truncated rune", "s", bs(0xe2, 0x82, 0)},
		{"object path empty", "o", bs(0)},
		{"object path relative", "o", bs("abc", 0)},
		{"object path double slash", "o", bs("/a//b", 0)},
		{"object path trailing slash", "o", bs("/a/", 0)},
		{"object path dash", "o", bs("/a-b", 0)},
		{"signature maybe", "g", bs("ms", 0)},
		{"signature incomplete", "g", bs("a", 0)},
		{"signature variant key", "g", bs("{vs}", 0)},
		{"signature unterminated", "g", bs("(")},

		{"variant empty", "v", nil},
		{"variant without separator", "v", bs("abc")},
		{"variant empty type", "v", bs(1, 0)},
		{"variant unknown type", "v", bs(1, 0, "z")},
		{"variant two types", "v", bs(1, 0, "yy")},
		{"variant indefinite type", "v", bs(1, 0, "r")},
		{"variant child too long", "v", bs(1, 2, 0, "y")},
		{"variant child too short", "v", bs(1, 0, "u")},
		{"variant child malformed", "v", bs(0xff, 0, 0, "s")},
		{"variant type too deep", "v", bs(0, strings.Repeat("a", 129), "y")},

		{"maybe fixed wrong size", "mu", bs(1, 0)},
		{"maybe variable without NUL", "ms", bs("a", 0, "b")},
		{"maybe variable bad child", "ms", bs("a", 0)},
		{"maybe in tuple bad", "(mqs)", bs(1, "a", 0)},

		{"fixed array ragged", "au", bs(1, 0, 0, 0, 2)},
		{"fixed tuple array ragged", "a(yu)", make([]byte, 12)},
		{"array offset past end", "as", bs("a", 0, 9)},
		{"array offset into table", "as", bs("a", 0, 3)},
		{"array offset table misaligned", "as", bs(make([]byte, 299), 0x2a, 0x01)},
		{"array element empty string", "as", bs(0)},
		{"array offsets decreasing", "aay", bs(1, 2, 3, 2, 1, 3)},
		{"array element past table", "aay", bs(1, 2, 3, 4, 1)},
		{"array element bad", "as", bs("a", 0, 0xff, 0, 2, 4)},
		{"array aligned start past offsets", "a(ts)", bs(make([]byte, 9), 9, 9)},
		{"dict entry bad key", "a{sv}", bs(0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0, "y", 2, 12)},
		{"2-byte offset table of odd size", "as", bs(strings.Repeat("a", 255), 0)},

		{"tuple empty needs offset", "(ss)", nil},
		{"tuple offset past end", "(ss)", bs("a", 0, "b", 0, 9)},
		{"tuple offset into table", "(ss)", bs("a", 0, "b", 0, 5)},
		{"tuple missing fixed member", "(sy)", bs("a", 0, 2)},
		{"tuple fixed member over offsets", "(su)", bs("a", 0, 0, 0, 1, 0, 0, 2)},
		{"tuple member misaligned past end", "(st)", bs("ab", 0, 3)},
		{"tuple offsets overlap members", "(ssy)", bs("a", 0, 7, 2)},
		{"dict entry short", "{sv}", bs("k", 0, 2)},
		{"dict entry fixed wrong size", "{yq}", bs(1, 2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ := gvariant.MustType(tc.sig)
			got, err := gvariant.Unmarshal(typ, tc.data)
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Unmarshal(%s, %x) = %#v, %v, want an error wrapping ErrInvalid", tc.sig, tc.data, got, err)
			}
			if gvariant.IsNormal(typ, tc.data) {
				t.Errorf("IsNormal(%s, %x) = true, want false", tc.sig, tc.data)
			}
		})
	}
}

// TestUnmarshalDeepVariants checks the nesting limit on data that nests
// variants: each child type is short, but together they are 200 deep.
func TestUnmarshalDeepVariants(t *testing.T) {
	t.Parallel()
	val := v("y", uint8(1))
	for range 200 {
		val = v("v", val)
	}
	typ := gvariant.MustType("v")
	data, err := gvariant.Marshal(typ, val)
	if err != nil {
		t.Fatalf("Marshal(v, 200 nested variants) error: %v", err)
	}
	if got, err := gvariant.Unmarshal(typ, data); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Unmarshal(v, 200 nested variants) = %T, %v, want an error wrapping ErrInvalid", got, err)
	}

	// 100 levels are within the limit.
	val = v("y", uint8(1))
	for range 100 {
		val = v("v", val)
	}
	roundTrip(t, typ, val)
}

// TestUnmarshalNotNormal checks data that decodes but is not in normal form:
// Unmarshal does not check padding or offset widths, IsNormal does.
func TestUnmarshalNotNormal(t *testing.T) {
	t.Parallel()
	a253 := strings.Repeat("a", 253)
	tests := []struct {
		name string
		sig  string
		data []byte
		want any
	}{
		{"unit not zero", "()", bs(1), gvariant.Tuple{}},
		{"tuple padding not zero", "(yu)", bs(1, 0xff, 0, 0, 2, 0, 0, 0), gvariant.Tuple{uint8(1), uint32(2)}},
		{"fixed tuple trailing padding not zero", "(uy)", bs(1, 0, 0, 0, 2, 0, 0, 0xee), gvariant.Tuple{uint32(1), uint8(2)}},
		{"slack before tuple offsets", "(sy)", bs("a", 0, 5, 0xee, 2), gvariant.Tuple{"a", uint8(5)}},
		{"array padding not zero", "a{sv}", bs("a", 0, 1, 1, 1, 1, 1, 1, 1, 0, "y", 2, 12), []gvariant.DictEntry{{Key: "a", Value: v("y", uint8(1))}}},
		{"array element padding not zero", "a(ts)", bs(make([]byte, 8), "a", 0, 7, 7, 7, 7, 7, 7, 1, 0, 0, 0, 0, 0, 0, 0, "b", 0, 10, 26),
			[]any{gvariant.Tuple{uint64(0), "a"}, gvariant.Tuple{uint64(1), "b"}}},
		// 256 bytes: a reader uses 2-byte offsets, but a writer fits the
		// same array into 255 bytes with 1-byte offsets.
		{"wider offsets than needed", "as", bs(a253, 0, 0xfe, 0x00), []any{a253}},
		{"variant child not normal", "v", bs(1, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, "(yu)"), v("(yu)", gvariant.Tuple{uint8(1), uint32(2)})},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ := gvariant.MustType(tc.sig)
			got, err := gvariant.Unmarshal(typ, tc.data)
			if err != nil {
				t.Fatalf("Unmarshal(%s, %x) error: %v", tc.sig, tc.data, err)
			}
			if diff := cmp.Diff(tc.want, got, cmpOpts); diff != "" {
				t.Errorf("Unmarshal(%s, %x) differs (-want +got):\n%s", tc.sig, tc.data, diff)
			}
			if gvariant.IsNormal(typ, tc.data) {
				t.Errorf("IsNormal(%s, %x) = true, want false", tc.sig, tc.data)
			}
			roundTrip(t, typ, got)
		})
	}
}

// TestUnmarshalCopies checks that decoded byte arrays do not alias the input.
func TestUnmarshalCopies(t *testing.T) {
	t.Parallel()
	data := bs(1, 2, 3)
	got, err := gvariant.Unmarshal(gvariant.MustType("ay"), data)
	if err != nil {
		t.Fatalf("Unmarshal(ay, %x) error: %v", data, err)
	}
	data[0] = 9
	if b := got.([]byte); b[0] != 1 {
		t.Errorf("Unmarshal(ay, …) = %x after changing the input, want 010203", b)
	}
}

func TestLookup(t *testing.T) {
	t.Parallel()
	dict := []gvariant.DictEntry{
		{Key: uint32(1), Value: v("s", "not a string key")},
		{Key: "plain", Value: "not a variant"},
		{Key: "version", Value: v("s", "1.0")},
		{Key: "version", Value: v("s", "2.0")},
		{Key: "ostree.ref-binding", Value: v("as", []any{"a"})},
	}
	tests := []struct {
		key    string
		want   gvariant.Variant
		wantOK bool
	}{
		{"version", v("s", "1.0"), true},
		{"ostree.ref-binding", v("as", []any{"a"}), true},
		{"plain", gvariant.Variant{}, false},
		{"missing", gvariant.Variant{}, false},
		{"", gvariant.Variant{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.key, func(t *testing.T) {
			t.Parallel()
			got, ok := gvariant.Lookup(dict, tc.key)
			if ok != tc.wantOK || !cmp.Equal(got, tc.want, cmpOpts) {
				t.Errorf("Lookup(dict, %q) = %v, %v, want %v, %v", tc.key, got, ok, tc.want, tc.wantOK)
			}
		})
	}
	if got, ok := gvariant.Lookup(nil, "version"); ok {
		t.Errorf("Lookup(nil, %q) = %v, true, want false", "version", got)
	}
}

func TestNewVariant(t *testing.T) {
	t.Parallel()
	got := gvariant.NewVariant("a{sv}", []gvariant.DictEntry{})
	if got.Type.String() != "a{sv}" {
		t.Errorf("NewVariant(%q, …).Type = %s, want a{sv}", "a{sv}", got.Type)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("NewVariant(%q, …) did not panic", "a{")
		}
	}()
	gvariant.NewVariant("a{", nil)
}

// TestUnmarshalErrorSize checks that errors about big malformed data stay
// short: they quote at most the start of strings and signatures.
func TestUnmarshalErrorSize(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("\x01", 1<<20)
	tests := []struct {
		name string
		sig  string
		data []byte
	}{
		{"string with NUL", "s", bs(big, 0, big, 0)},
		{"invalid UTF-8", "s", bs(big, 0xff, 0)},
		{"bad variant type", "v", bs(0, strings.Repeat("z", 1<<20))},
		{"long variant type", "v", bs(0, "(", strings.Repeat("y", 1<<20), ")")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := gvariant.Unmarshal(gvariant.MustType(tc.sig), tc.data)
			if err == nil || len(err.Error()) > 1000 {
				t.Errorf("Unmarshal(%s, %d bytes) error of %d bytes, want an error of at most 1000", tc.sig, len(tc.data), len(fmt.Sprint(err)))
			}
		})
	}
}
