package sign_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/sign"
)

// outcome names the one error class a verification must end in.
type outcome int

const (
	verified outcome = iota
	noSignature
	untrusted
	invalid
)

func (o outcome) String() string {
	return [...]string{"success", "ErrNoSignature", "ErrUntrusted", "ErrInvalid"}[o]
}

// checkOutcome asserts that err belongs to exactly the wanted class.
func checkOutcome(t *testing.T, call string, err error, want outcome) {
	t.Helper()
	got := map[outcome]bool{
		verified:    err == nil,
		noSignature: errors.Is(err, sign.ErrNoSignature),
		untrusted:   errors.Is(err, sign.ErrUntrusted),
		invalid:     errors.Is(err, errdefs.ErrInvalid),
	}
	for o, is := range got {
		if is != (o == want) {
			t.Errorf("%s error = %v; want %v", call, err, want)
			return
		}
	}
	if (want == noSignature || want == untrusted) && !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("%s error = %v; want it also to be errdefs.ErrFailedPrecondition", call, err)
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0x01
	return c
}

func TestVerifyEd25519(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	spec := mustPublic(t, specPublic)
	specKey, _ := sign.ParseSecretKey(specSecret)
	otherKey, other := genKey(t, 0x42)
	_, third := genKey(t, 0x43)

	// A trusted-keys file with several keys, the vector key in the middle.
	keyFile := filepath.Join(t.TempDir(), "trusted.ed25519")
	content := "# release keys\n" + other.String() + "\n\n" + spec.String() + "\n" + third.String() + "\n"
	if err := os.WriteFile(keyFile, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	fromFile, err := sign.LoadTrustedKeys(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if len(fromFile) != 3 {
		t.Fatalf("LoadTrustedKeys(%q) = %d keys, want 3", content, len(fromFile))
	}

	mustAppend := func(meta []byte, data []byte, signers ...sign.Signer) []byte {
		t.Helper()
		out, err := sign.Append(meta, data, signers...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	bySpecThenOther := mustAppend(v.c1Ed25519, v.c1, sign.NewEd25519Signer(otherKey))
	byOtherThenSpec := mustAppend(nil, v.c1, sign.NewEd25519Signer(otherKey), sign.NewEd25519Signer(specKey))
	shortSig, _ := sign.AddSignature(nil, sign.MetadataKeyEd25519, make([]byte, 63))
	sig := mustHex(t, specSignature)
	withDummy, _ := sign.AddSignature(v.c1Dummy, sign.MetadataKeyEd25519, sig)

	tests := []struct {
		name      string
		data      []byte
		meta      []byte
		trusted   []sign.PublicKey
		revoked   []sign.PublicKey
		want      outcome
		wantKey   string // for success
		wantIndex int
		wantMsg   string // substring of the error
	}{
		{name: "spec vector", data: v.c1, meta: v.c1Ed25519, trusted: []sign.PublicKey{spec}, wantKey: specPublic},
		{name: "several keys in one file", data: v.c1, meta: v.c1Ed25519, trusted: fromFile, wantKey: specPublic},
		{name: "inline remote key", data: v.c1, meta: v.c1Ed25519, trusted: []sign.PublicKey{mustPublic(t, " "+specPublic+"\n")}, wantKey: specPublic},
		{name: "second signature verifies", data: v.c1, meta: byOtherThenSpec, trusted: []sign.PublicKey{spec}, wantKey: specPublic, wantIndex: 1},
		{name: "first of two signatures verifies", data: v.c1, meta: bySpecThenOther, trusted: []sign.PublicKey{spec}, wantKey: specPublic},
		{name: "signatures beside other engines' keys", data: v.c1, meta: withDummy, trusted: []sign.PublicKey{spec}, wantKey: specPublic},
		{name: "wrong key", data: v.c1, meta: v.c1Ed25519, trusted: []sign.PublicKey{other, third}, want: untrusted, wantMsg: "not made by any of 2 trusted keys"},
		{name: "no trusted keys", data: v.c1, meta: v.c1Ed25519, want: untrusted},
		{name: "flipped byte in data", data: flip(v.c1, 100), meta: v.c1Ed25519, trusted: []sign.PublicKey{spec}, want: untrusted},
		{name: "flipped byte in signature", data: v.c1, meta: flip(v.c1Ed25519, 40), trusted: []sign.PublicKey{spec}, want: untrusted},
		{name: "short signature", data: v.c1, meta: shortSig, trusted: []sign.PublicKey{spec}, want: untrusted, wantMsg: "63 bytes"},
		{name: "revoked key", data: v.c1, meta: v.c1Ed25519, trusted: fromFile, revoked: []sign.PublicKey{spec}, want: untrusted, wantMsg: "revoked key " + specPublic},
		{name: "revoked key, another signature by a trusted key", data: v.c1, meta: bySpecThenOther, trusted: fromFile, revoked: []sign.PublicKey{spec}, wantKey: other.String(), wantIndex: 1},
		{name: "revocation of an unused key", data: v.c1, meta: v.c1Ed25519, trusted: fromFile, revoked: []sign.PublicKey{third}, wantKey: specPublic},
		{name: "no detached metadata", data: v.c1, meta: nil, trusted: []sign.PublicKey{spec}, want: noSignature},
		{name: "only other engines' signatures", data: v.c1, meta: v.c1Dummy, trusted: []sign.PublicKey{spec}, want: noSignature, wantMsg: sign.MetadataKeyEd25519},
		{name: "empty signature list", data: v.c1, meta: emptySigList(t), trusted: []sign.PublicKey{spec}, want: noSignature},
		{name: "truncated metadata", data: v.c1, meta: v.c1Ed25519[:60], trusted: []sign.PublicKey{spec}, want: invalid},
		{name: "garbage metadata", data: v.c1, meta: []byte("this is not a gvariant\xff"), trusted: []sign.PublicKey{spec}, want: invalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := sign.Verify(tt.data, tt.meta, sign.NewEd25519Verifier(tt.trusted, tt.revoked))
			checkOutcome(t, "Verify", err, tt.want)
			if err != nil && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Verify error = %q, want it to mention %q", err, tt.wantMsg)
			}
			if tt.want != verified {
				return
			}
			want := sign.Result{Engine: sign.EngineEd25519, Key: tt.wantKey, Index: tt.wantIndex}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("Verify result (-want +got):\n%s", diff)
			}
		})
	}
}

func emptySigList(t *testing.T) []byte {
	t.Helper()
	m := sign.Metadata{}
	m, err := m.AddSignature(sign.MetadataKeyEd25519, []byte("x"))
	if err != nil {
		t.Fatal(err)
	}
	// Replace the one-element list by an empty one.
	m[0].Value = gvariant.NewVariant("aay", [][]byte{})
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyWithoutVerifiers(t *testing.T) {
	t.Parallel()
	if _, err := sign.Verify([]byte("data"), nil); err == nil || !strings.HasPrefix(err.Error(), "internal error:") {
		t.Errorf("Verify without verifiers error = %v, want an internal error", err)
	}
}

// TestSignAndVerifyRoundTrip signs fresh data, as `strata repo commit --sign-key` will, and
// checks that adding a second signature keeps the first one verifiable.
func TestSignAndVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	data := []byte("commit object bytes")
	aKey, a := genKey(t, 1)
	bKey, b := genKey(t, 2)
	meta, err := sign.Append(nil, data, sign.NewEd25519Signer(aKey))
	if err != nil {
		t.Fatal(err)
	}
	meta, err = sign.Append(meta, data, sign.NewEd25519Signer(bKey))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key       sign.PublicKey
		wantIndex int
	}{{a, 0}, {b, 1}} {
		res, err := sign.Verify(data, meta, sign.NewEd25519Verifier([]sign.PublicKey{c.key}, nil))
		if err != nil || res.Key != c.key.String() || res.Index != c.wantIndex {
			t.Errorf("Verify with key %v = %+v, %v; want index %d", c.key, res, err, c.wantIndex)
		}
	}
	sigs, err := mustParse(t, meta).Signatures(sign.MetadataKeyEd25519)
	if err != nil || len(sigs) != 2 {
		t.Fatalf("Signatures = %d, %v; want 2", len(sigs), err)
	}
	if !bytes.Equal(sigs[0], mustSign(t, aKey, data)) {
		t.Errorf("first signature changed after adding a second")
	}
}

func mustSign(t *testing.T, k sign.SecretKey, data []byte) []byte {
	t.Helper()
	s, err := sign.NewEd25519Signer(k).Sign(data)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
