package gvariant_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

func TestParseType(t *testing.T) {
	t.Parallel()
	tests := []struct {
		sig   string
		kind  byte
		align int
		fixed int // 0: variable size
	}{
		{"b", 'b', 1, 1},
		{"y", 'y', 1, 1},
		{"n", 'n', 2, 2},
		{"q", 'q', 2, 2},
		{"i", 'i', 4, 4},
		{"u", 'u', 4, 4},
		{"h", 'h', 4, 4},
		{"x", 'x', 8, 8},
		{"t", 't', 8, 8},
		{"d", 'd', 8, 8},
		{"s", 's', 1, 0},
		{"o", 'o', 1, 0},
		{"g", 'g', 1, 0},
		{"v", 'v', 8, 0},
		{"my", 'm', 1, 0},
		{"mt", 'm', 8, 0},
		{"ay", 'a', 1, 0},
		{"ax", 'a', 8, 0},
		{"aq", 'a', 2, 0},
		{"av", 'a', 8, 0},
		{"()", '(', 1, 1},
		{"(())", '(', 1, 1},
		{"(()())", '(', 1, 2},
		{"(y)", '(', 1, 1},
		{"(yy)", '(', 1, 2},
		{"(yq)", '(', 2, 4},
		{"(qy)", '(', 2, 4},
		{"(yu)", '(', 4, 8},
		{"(uy)", '(', 4, 8},
		{"(yt)", '(', 8, 16},
		{"(ty)", '(', 8, 16},
		{"(yyyyyyyyy)", '(', 1, 9},
		{"(uuu)", '(', 4, 12},
		{"((yu)y)", '(', 4, 12},
		{"(ys)", '(', 1, 0},
		{"(sy)", '(', 1, 0},
		{"(yv)", '(', 8, 0},
		{"{yy}", '{', 1, 2},
		{"{sv}", '{', 8, 0},
		{"{ts}", '{', 8, 0},
		{"{tq}", '{', 8, 16},
		{"{hv}", '{', 8, 0},
		{"a{sv}", 'a', 8, 0},
		{"(a{sv}aya(say)sstayay)", '(', 8, 0},
		{"(a(say)a(sayay))", '(', 1, 0},
		{"(uuua(ayay))", '(', 4, 0},
		{"(tuuuusa(ayay))", '(', 8, 0},
		{"(a(s(taya{sv}))a{sv})", '(', 8, 0},
		{strings.Repeat("a", 128) + "y", 'a', 1, 0},
	}
	for _, tc := range tests {
		t.Run(tc.sig, func(t *testing.T) {
			t.Parallel()
			typ, err := gvariant.ParseType(tc.sig)
			if err != nil {
				t.Fatalf("ParseType(%q) error: %v", tc.sig, err)
			}
			if got := typ.String(); got != tc.sig {
				t.Errorf("ParseType(%q).String() = %q, want %q", tc.sig, got, tc.sig)
			}
			if got := typ.Kind(); got != tc.kind {
				t.Errorf("ParseType(%q).Kind() = %q, want %q", tc.sig, got, tc.kind)
			}
			if got := typ.Alignment(); got != tc.align {
				t.Errorf("ParseType(%q).Alignment() = %d, want %d", tc.sig, got, tc.align)
			}
			n, ok := typ.FixedSize()
			if n != tc.fixed || ok != (tc.fixed > 0) {
				t.Errorf("ParseType(%q).FixedSize() = %d, %v, want %d, %v", tc.sig, n, ok, tc.fixed, tc.fixed > 0)
			}
			again := gvariant.MustType(tc.sig)
			if again.String() != tc.sig {
				t.Errorf("MustType(%q).String() = %q, want %q", tc.sig, again.String(), tc.sig)
			}
		})
	}
}

func TestTypeStructure(t *testing.T) {
	t.Parallel()
	typ := gvariant.MustType("(a{sv}maysv)")
	var fields []string
	for _, f := range typ.Fields() {
		fields = append(fields, f.String())
	}
	if got, want := strings.Join(fields, " "), "a{sv} may s v"; got != want {
		t.Errorf("Fields() = %s, want %s", got, want)
	}
	dict := typ.Fields()[0]
	if got := dict.Elem().String(); got != "{sv}" {
		t.Errorf("a{sv}.Elem() = %s, want {sv}", got)
	}
	if got := len(dict.Elem().Fields()); got != 2 {
		t.Errorf("len({sv}.Fields()) = %d, want 2", got)
	}
	if got := typ.Fields()[1].Elem().Elem().String(); got != "y" {
		t.Errorf("may.Elem().Elem() = %s, want y", got)
	}
	if e := typ.Elem(); e != nil {
		t.Errorf("tuple.Elem() = %s, want nil", e)
	}
	if f := gvariant.MustType("u").Fields(); f != nil {
		t.Errorf("u.Fields() = %v, want nil", f)
	}
}

func TestParseTypeErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, sig string }{
		{"empty", ""},
		{"unknown character", "z"},
		{"indefinite r", "r"},
		{"indefinite star", "*"},
		{"indefinite question mark", "?"},
		{"array without element", "a"},
		{"maybe without element", "m"},
		{"unterminated tuple", "(yy"},
		{"lone close paren", ")"},
		{"lone open brace", "{"},
		{"lone close brace", "}"},
		{"dict entry missing value", "{s}"},
		{"dict entry three types", "{sss}"},
		{"dict entry unterminated", "{sv"},
		{"dict entry variant key", "{vs}"},
		{"dict entry container key", "{(y)s}"},
		{"dict entry array key", "{ays}"},
		{"dict entry maybe key", "{mss}"},
		{"two types", "yy"},
		{"trailing close", "(y))"},
		{"nested too deep", strings.Repeat("a", 129) + "y"},
		{"tuples nested too deep", strings.Repeat("(", 200) + strings.Repeat(")", 200)},
		{"NUL", "\x00"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			typ, err := gvariant.ParseType(tc.sig)
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("ParseType(%q) = %v, %v, want an error wrapping ErrInvalid", tc.sig, typ, err)
			}
		})
	}
}

func TestMustTypePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Errorf("MustType(%q) did not panic", "{vs}")
		}
	}()
	gvariant.MustType("{vs}")
}

// TestParseTypeMany parses more distinct signatures than the type cache
// keeps, as decoding variants from untrusted data may.
func TestParseTypeMany(t *testing.T) {
	t.Parallel()
	for n := range 6000 {
		sig := "(" + strings.Repeat("y", n%64) + strings.Repeat("q", n/64) + ")"
		typ, err := gvariant.ParseType(sig)
		if err != nil || typ.String() != sig {
			t.Fatalf("ParseType(%q) = %v, %v, want the type %s", sig, typ, err, sig)
		}
	}
}
