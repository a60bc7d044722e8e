package sign_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/sign"
)

// TestAddSignatureMatchesOstree builds detached metadata from empty and compares it with the
// bytes in the vectors: ostree's own writes (dummy signatures, gpg-sign) and the ed25519
// vector.
func TestAddSignatureMatchesOstree(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	sk, err := sign.NewSecretKey(specSeed())
	if err != nil {
		t.Fatal(err)
	}
	ed, err := sign.NewEd25519Signer(sk).Sign(v.c1)
	if err != nil {
		t.Fatal(err)
	}
	if want := mustHex(t, specSignature); !bytes.Equal(ed, want) {
		t.Fatalf("ed25519 signature of C1 = %x, want %x", ed, want)
	}
	gpgSigs, err := mustParse(t, v.c1GPG).Signatures(sign.MetadataKeyGPG)
	if err != nil || len(gpgSigs) != 1 {
		t.Fatalf("signatures under %s in C1.commitmeta.gpg = %d, %v; want 1", sign.MetadataKeyGPG, len(gpgSigs), err)
	}

	type add struct {
		key string
		sig []byte
	}
	tests := []struct {
		name string
		adds []add
		want []byte
	}{
		{name: "ed25519 spec vector (signing/C1.commitmeta.ed25519, 95 bytes)",
			adds: []add{{sign.MetadataKeyEd25519, ed}}, want: v.c1Ed25519},
		{name: "ostree gpg-sign (signing/C1.commitmeta.gpg)",
			adds: []add{{sign.MetadataKeyGPG, gpgSigs[0]}}, want: v.c1GPG},
		{name: "two dummy signatures, the second appended (repo-archive C1 .commitmeta)",
			adds: []add{{"ostree.sign.dummy", []byte("dummykey1")}, {"ostree.sign.dummy", []byte("dummykey2")}}, want: v.c1Dummy},
		{name: "dummy summary.sig",
			adds: []add{{"ostree.sign.dummy", []byte("dummysumkey")}}, want: v.summarySig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var meta []byte
			for _, a := range tt.adds {
				var err error
				if meta, err = sign.AddSignature(meta, a.key, a.sig); err != nil {
					t.Fatalf("AddSignature(%x, %s, %x) error = %v", meta, a.key, a.sig, err)
				}
			}
			if !bytes.Equal(meta, tt.want) {
				t.Errorf("AddSignature chain = %x, want %x", meta, tt.want)
			}
			// Re-encoding what ostree wrote gives the same bytes.
			if again, err := mustParse(t, tt.want).Marshal(); err != nil || !bytes.Equal(again, tt.want) {
				t.Errorf("ParseMetadata(%x).Marshal() = %x, %v", tt.want, again, err)
			}
		})
	}
	if len(v.c1Ed25519) != 95 {
		t.Errorf("signing/C1.commitmeta.ed25519 is %d bytes, want 95", len(v.c1Ed25519))
	}
}

func mustParse(t *testing.T, b []byte) sign.Metadata {
	t.Helper()
	m, err := sign.ParseMetadata(b)
	if err != nil {
		t.Fatalf("ParseMetadata(%x) error = %v", b, err)
	}
	return m
}

func TestAddSignatureKeepsOtherEntries(t *testing.T) {
	t.Parallel()
	base := sign.Metadata{
		{Key: "version", Value: gvariant.NewVariant("s", "1.0")},
		{Key: sign.MetadataKeyGPG, Value: gvariant.NewVariant("aay", [][]byte{[]byte("gpg-sig")})},
		{Key: "custom.uint64", Value: gvariant.NewVariant("t", uint64(42))},
	}
	enc, err := base.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	one, err := sign.AddSignature(enc, sign.MetadataKeyEd25519, []byte("first"))
	if err != nil {
		t.Fatal(err)
	}
	two, err := sign.AddSignature(one, sign.MetadataKeyEd25519, []byte("second"))
	if err != nil {
		t.Fatal(err)
	}
	gpg, err := sign.AddSignature(two, sign.MetadataKeyGPG, []byte("gpg-sig-2"))
	if err != nil {
		t.Fatal(err)
	}
	got := mustParse(t, gpg)

	var keys []string
	for _, e := range got {
		keys = append(keys, e.Key.(string))
	}
	if diff := cmp.Diff([]string{"version", sign.MetadataKeyGPG, "custom.uint64", sign.MetadataKeyEd25519}, keys); diff != "" {
		t.Errorf("keys after AddSignature (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		key  string
		want [][]byte
	}{
		{sign.MetadataKeyEd25519, [][]byte{[]byte("first"), []byte("second")}},
		{sign.MetadataKeyGPG, [][]byte{[]byte("gpg-sig"), []byte("gpg-sig-2")}},
	} {
		sigs, err := got.Signatures(c.key)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(c.want, sigs); diff != "" {
			t.Errorf("Signatures(%s) (-want +got):\n%s", c.key, diff)
		}
	}
	if v, ok := got.Lookup("custom.uint64"); !ok || v.Value != uint64(42) {
		t.Errorf("Lookup(custom.uint64) = %v, %v; want 42", v, ok)
	}

	// Metadata.AddSignature leaves its receiver alone.
	m := mustParse(t, one)
	if _, err := m.AddSignature(sign.MetadataKeyEd25519, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.Marshal(); !bytes.Equal(again, one) {
		t.Errorf("Metadata.AddSignature changed its receiver: %x, want %x", again, one)
	}
}

func TestParseMetadataErrors(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	dup, err := gvariant.Marshal(gvariant.MustType("a{sv}"), []gvariant.DictEntry{
		{Key: sign.MetadataKeyEd25519, Value: gvariant.NewVariant("aay", [][]byte{[]byte("a")})},
		{Key: sign.MetadataKeyEd25519, Value: gvariant.NewVariant("aay", [][]byte{[]byte("b")})},
	})
	if err != nil {
		t.Fatal(err)
	}
	wrongType, err := gvariant.Marshal(gvariant.MustType("a{sv}"), []gvariant.DictEntry{
		{Key: sign.MetadataKeyEd25519, Value: gvariant.NewVariant("s", "not signatures")},
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		meta []byte
	}{
		{name: "truncated", meta: v.c1Ed25519[:len(v.c1Ed25519)-1]},
		{name: "one byte", meta: []byte{0x5e}},
		{name: "garbage", meta: bytes.Repeat([]byte{0xff}, 40)},
		{name: "duplicate key", meta: dup},
		{name: "signature key of type s", meta: wrongType},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := sign.AddSignature(tt.meta, sign.MetadataKeyEd25519, []byte("sig")); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("AddSignature(%x) error = %v, want ErrInvalid", tt.meta, err)
			}
		})
	}
}

// FuzzParseMetadata feeds arbitrary bytes to the detached-metadata decoder: it must not panic,
// and what it accepts must re-encode to something that decodes to the same value and accepts
// one more signature.
func FuzzParseMetadata(f *testing.F) {
	v := loadVectors(f)
	for _, b := range [][]byte{v.c1Ed25519, v.c1GPG, v.c1Dummy, v.summarySig} {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := sign.ParseMetadata(b)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseMetadata(%x) error = %v, not ErrInvalid", b, err)
			}
			return
		}
		enc, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal of decoded %x: %v", b, err)
		}
		again, err := sign.ParseMetadata(enc)
		if err != nil {
			t.Fatalf("ParseMetadata(Marshal(ParseMetadata(%x))) error = %v", b, err)
		}
		if enc2, _ := again.Marshal(); !bytes.Equal(enc, enc2) {
			t.Fatalf("re-encoding is not stable: %x then %x", enc, enc2)
		}
		for _, k := range []string{sign.MetadataKeyEd25519, sign.MetadataKeyGPG} {
			old, serr := m.Signatures(k)
			added, err := sign.AddSignature(b, k, []byte("sig"))
			if (serr == nil) != (err == nil) {
				t.Fatalf("Signatures(%s) error %v but AddSignature error %v", k, serr, err)
			}
			if err != nil {
				continue
			}
			sigs, err := mustParse(t, added).Signatures(k)
			if err != nil || len(sigs) != len(old)+1 || !bytes.Equal(sigs[len(old)], []byte("sig")) {
				t.Fatalf("after AddSignature(%x, %s): %d signatures, %v; want %d", b, k, len(sigs), err, len(old)+1)
			}
		}
	})
}
