package gvariant_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

// fuzzTypes are the types FuzzUnmarshal decodes: every OSTree object and
// file header type, and a few that exercise maybes, variants and offsets.
var fuzzTypes = []string{
	sigCommit,
	sigDirTree,
	sigDirMeta,
	sigFilezHeader,
	sigFileHeader,
	sigSummary,
	sigMetadataDict,
	"aay",
	"mv",
	"(yqmsa{yv})",
	"ax",
	"as",
}

// checkUnmarshal asserts what holds for any input: Unmarshal does not panic
// and fails only with ErrInvalid; what it accepts re-encodes, in normal
// form, to a value that decodes the same; and IsNormal holds exactly when
// the input is that normal form.
func checkUnmarshal(t *testing.T, typ *gvariant.Type, data []byte) {
	t.Helper()
	got, err := gvariant.Unmarshal(typ, data)
	normal := gvariant.IsNormal(typ, data)
	if err != nil {
		if !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("Unmarshal(%s, %x) error %v, want one wrapping ErrInvalid", typ, data, err)
		}
		if normal {
			t.Fatalf("IsNormal(%s, %x) = true for data Unmarshal rejects: %v", typ, data, err)
		}
		return
	}
	enc, err := gvariant.Marshal(typ, got)
	if err != nil {
		t.Fatalf("Marshal(%s, Unmarshal(%x)) error: %v", typ, data, err)
	}
	again, err := gvariant.Unmarshal(typ, enc)
	if err != nil {
		t.Fatalf("Unmarshal(%s, Marshal(Unmarshal(%x)) = %x) error: %v", typ, data, enc, err)
	}
	if diff := cmp.Diff(got, again, cmpOpts); diff != "" {
		t.Fatalf("Unmarshal(%s, Marshal(v)) differs from v = Unmarshal(%x) (-v +got):\n%s", typ, data, diff)
	}
	if !gvariant.IsNormal(typ, enc) {
		t.Fatalf("IsNormal(%s, Marshal(Unmarshal(%x)) = %x) = false, want true", typ, data, enc)
	}
	if want := bytes.Equal(enc, data); normal != want {
		t.Fatalf("IsNormal(%s, %x) = %v, want %v (normal form %x)", typ, data, normal, want, enc)
	}
}

// FuzzUnmarshal decodes arbitrary bytes as one of fuzzTypes. The seeds are
// the GVariant data of the test vectors, values from the generator, and
// truncated and bit-flipped copies of both.
func FuzzUnmarshal(f *testing.F) {
	for _, vec := range loadVectors(f) {
		if i := slices.Index(fuzzTypes, vec.sig); i >= 0 {
			f.Add(uint8(i), vec.data)
		}
	}
	g := generator{src: rand.New(rand.NewPCG(1, 2)), maxDepth: 4, big: 1024}
	for i, sig := range fuzzTypes {
		typ := gvariant.MustType(sig)
		for range 4 {
			b, err := gvariant.Marshal(typ, g.value(typ, 0))
			if err != nil {
				f.Fatalf("Marshal(%s, generated value) error: %v", sig, err)
			}
			f.Add(uint8(i), b)
			if len(b) > 0 {
				f.Add(uint8(i), b[:len(b)-1])
				flipped := bytes.Clone(b)
				flipped[len(b)/2] ^= 0x10
				f.Add(uint8(i), flipped)
			}
		}
	}
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		checkUnmarshal(t, gvariant.MustType(fuzzTypes[int(which)%len(fuzzTypes)]), data)
	})
}

// FuzzUnmarshalAnyType decodes arbitrary bytes as an arbitrary type.
func FuzzUnmarshalAnyType(f *testing.F) {
	for _, tc := range marshalTests {
		f.Add(tc.sig, tc.want)
	}
	f.Add("(a{sv}aya(say)sstayay)", hx("00"))
	f.Add("mmmv", bs(1, 0, "y", 0, 0, 0))
	f.Add("a{s(vmv)}", []byte(nil))
	f.Fuzz(func(t *testing.T, sig string, data []byte) {
		typ, err := gvariant.ParseType(sig)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseType(%q) error %v, want one wrapping ErrInvalid", sig, err)
			}
			return
		}
		if typ.String() != sig {
			t.Fatalf("ParseType(%q).String() = %q", sig, typ.String())
		}
		checkUnmarshal(t, typ, data)
	})
}

// FuzzMarshalRoundTrip builds a random type and value from the fuzz input
// and checks that it encodes in normal form, at its fixed size if it has
// one, after 8-aligned data as at the start, and decodes back unchanged.
func FuzzMarshalRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{9, 3, 5, 7, 8, 1, 6, 4, 5, 10, 2, 1, 3})
	f.Add(bytes.Repeat([]byte{7}, 64))
	f.Add(bytes.Repeat([]byte{8, 3, 200, 17}, 40))
	f.Add(bytes.Repeat([]byte{6, 9, 3, 3, 3, 255, 2}, 30))
	f.Fuzz(func(t *testing.T, in []byte) {
		g := generator{src: &byteSource{b: in}, maxDepth: 5, big: 4096}
		typ, val := g.randomValue()
		b := roundTrip(t, typ, val)
		prefix := []byte("8 bytes!")
		appended, err := gvariant.AppendMarshal(bytes.Clone(prefix), typ, val)
		if err != nil {
			t.Fatalf("AppendMarshal(%q, %s, …) error: %v", prefix, typ, err)
		}
		if !bytes.Equal(appended[len(prefix):], b) || !bytes.Equal(appended[:len(prefix)], prefix) {
			t.Fatalf("AppendMarshal(%q, %s, …) = %x, want %q + %x", prefix, typ, appended, prefix, b)
		}
	})
}

// TestRandomRoundTrip runs the property of FuzzMarshalRoundTrip on seeded
// random values in every plain test run.
func TestRandomRoundTrip(t *testing.T) {
	t.Parallel()
	g := generator{src: rand.New(rand.NewPCG(7, 11)), maxDepth: 4, big: 1 << 18}
	for range 2000 {
		typ, val := g.randomValue()
		roundTrip(t, typ, val)
	}
}
