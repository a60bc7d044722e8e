package sign_test

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sign"
)

// keyTime is the clock of the generated OpenPGP keys; verification runs a day later.
var keyTime = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func later() time.Time { return keyTime.Add(24 * time.Hour) }

// newGPGKey generates an Ed25519 OpenPGP key (the algorithm of the ostree sample) and returns it
// with its armored public key and binary secret key.
func newGPGKey(t *testing.T, name string) (e *openpgp.Entity, armoredPublic, secret []byte) {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, Time: func() time.Time { return keyTime }}
	e, err := openpgp.NewEntity(name, "test", name+"@example.org", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var pub bytes.Buffer
	w, err := armor.Encode(&pub, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var sec bytes.Buffer
	if err := e.SerializePrivate(&sec, cfg); err != nil {
		t.Fatal(err)
	}
	return e, pub.Bytes(), sec.Bytes()
}

func fpr(e *openpgp.Entity) string { return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint) }

// TestGPGOstreeSample checks what can be checked of the real `ostree gpg-sign` commitmeta for
// C1 without its public key, which the vectors do not carry: the container, the signature
// packet and its issuer, and that verifying it fails cleanly as made by an unknown key.
func TestGPGOstreeSample(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	sigs, err := mustParse(t, v.c1GPG).Signatures(sign.MetadataKeyGPG)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("Signatures(%s) = %d, %v; want 1", sign.MetadataKeyGPG, len(sigs), err)
	}
	sig := sigs[0]

	issuer, err := sign.GPGIssuer(sig)
	if err != nil || issuer != gpgSampleIssuer {
		t.Errorf("GPGIssuer(sample) = %q, %v; want %s", issuer, err, gpgSampleIssuer)
	}

	// The packet is what gpg makes for `ostree gpg-sign`: a v4 binary-document signature by
	// an EdDSA key over SHA-256, the long key ID being the fingerprint's last 8 bytes.
	p, err := packet.Read(bytes.NewReader(sig))
	if err != nil {
		t.Fatal(err)
	}
	ps, ok := p.(*packet.Signature)
	if !ok {
		t.Fatalf("sample packet is a %T, want *packet.Signature", p)
	}
	got := struct {
		Version int
		SigType packet.SignatureType
		Algo    packet.PublicKeyAlgorithm
		Hash    crypto.Hash
		KeyID   uint64
		Created time.Time
	}{ps.Version, ps.SigType, ps.PubKeyAlgo, ps.Hash, *ps.IssuerKeyId, ps.CreationTime.UTC()}
	want := got
	want.Version, want.SigType, want.Algo, want.Hash = 4, packet.SigTypeBinary, packet.PubKeyAlgoEdDSA, crypto.SHA256
	want.KeyID = 0x06733AA7A70CCEF2
	want.Created = time.Date(2026, 11, 23, 8, 35, 3, 0, time.UTC)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sample signature packet (-want +got):\n%s", diff)
	}

	_, armoredPub, _ := newGPGKey(t, "someone else")
	unrelated, err := sign.NewGPGVerifier(later, armoredPub)
	if err != nil {
		t.Fatal(err)
	}
	_, err = sign.Verify(v.c1, v.c1GPG, unrelated)
	checkOutcome(t, "Verify(C1, C1.commitmeta.gpg, unrelated keyring)", err, untrusted)
	if err != nil && !strings.Contains(err.Error(), "unknown key "+gpgSampleIssuer) {
		t.Errorf("Verify error = %q, want it to name unknown key %s", err, gpgSampleIssuer)
	}
	// An ed25519 verifier sees no signature of its kind in the sample.
	_, err = sign.Verify(v.c1, v.c1GPG, sign.NewEd25519Verifier([]sign.PublicKey{mustPublic(t, specPublic)}, nil))
	checkOutcome(t, "Verify(C1, C1.commitmeta.gpg, ed25519)", err, noSignature)
}

func TestGPGSignVerify(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)
	alice, alicePub, aliceSec := newGPGKey(t, "alice")
	bob, bobPub, bobSec := newGPGKey(t, "bob")

	var bobBinary bytes.Buffer
	if err := bob.Serialize(&bobBinary); err != nil {
		t.Fatal(err)
	}
	signer, err := sign.NewGPGSigner(func() time.Time { return keyTime.Add(time.Hour) }, aliceSec, "")
	if err != nil {
		t.Fatal(err)
	}
	if signer.Fingerprint() != fpr(alice) {
		t.Errorf("GPGSigner.Fingerprint() = %s, want %s", signer.Fingerprint(), fpr(alice))
	}
	bobSigner, err := sign.NewGPGSigner(func() time.Time { return keyTime.Add(2 * time.Hour) }, bobSec, fpr(bob)[24:])
	if err != nil {
		t.Fatal(err)
	}

	// Signed as `ostree gpg-sign` does: over the commit bytes, appended to the detached metadata,
	// here beside the vector's ed25519 signature.
	meta, err := sign.Append(v.c1Ed25519, v.c1, signer)
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := mustParse(t, meta).Signatures(sign.MetadataKeyGPG)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("Signatures(%s) = %d, %v; want 1", sign.MetadataKeyGPG, len(sigs), err)
	}
	if iss, err := sign.GPGIssuer(sigs[0]); err != nil || iss != fpr(alice) {
		t.Errorf("GPGIssuer(our signature) = %s, %v; want %s", iss, err, fpr(alice))
	}
	bobMeta, err := sign.Append(nil, v.c1, bobSigner)
	if err != nil {
		t.Fatal(err)
	}
	bothMeta, err := sign.AddSignature(bobMeta, sign.MetadataKeyGPG, sigs[0])
	if err != nil {
		t.Fatal(err)
	}

	twoArmored := append(append(append([]byte(nil), bobPub...), '\n'), alicePub...)
	tests := []struct {
		name      string
		keyrings  [][]byte
		data      []byte
		meta      []byte
		now       func() time.Time
		want      outcome
		wantKey   string
		wantIndex int
	}{
		{name: "armored keyring", keyrings: [][]byte{alicePub}, data: v.c1, meta: meta, now: later, wantKey: fpr(alice)},
		{name: "two armored blocks in one file", keyrings: [][]byte{twoArmored}, data: v.c1, meta: meta, now: later, wantKey: fpr(alice)},
		{name: "binary and armored keyrings", keyrings: [][]byte{bobBinary.Bytes(), alicePub}, data: v.c1, meta: bothMeta, now: later, wantKey: fpr(bob)},
		{name: "second signature by the trusted key", keyrings: [][]byte{alicePub}, data: v.c1, meta: bothMeta, now: later, wantKey: fpr(alice), wantIndex: 1},
		{name: "other key only", keyrings: [][]byte{bobBinary.Bytes()}, data: v.c1, meta: meta, now: later, want: untrusted},
		{name: "flipped byte in data", keyrings: [][]byte{alicePub}, data: flip(v.c1, 3), meta: meta, now: later, want: untrusted},
		{name: "clock before the key existed", keyrings: [][]byte{alicePub}, data: v.c1, meta: meta, now: func() time.Time { return keyTime.Add(-time.Hour) }, want: untrusted},
		{name: "no gpg signature", keyrings: [][]byte{alicePub}, data: v.c1, meta: v.c1Ed25519, now: later, want: noSignature},
		{name: "garbage signature element", keyrings: [][]byte{alicePub}, data: v.c1, meta: mustAdd(t, nil, sign.MetadataKeyGPG, []byte("not a packet")), now: later, want: untrusted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ver, err := sign.NewGPGVerifier(tt.now, tt.keyrings...)
			if err != nil {
				t.Fatal(err)
			}
			res, err := sign.Verify(tt.data, tt.meta, ver)
			checkOutcome(t, "Verify", err, tt.want)
			if tt.want != verified {
				return
			}
			want := sign.Result{Engine: sign.EngineGPG, Key: tt.wantKey, Index: tt.wantIndex}
			if diff := cmp.Diff(want, res); diff != "" {
				t.Errorf("Verify result (-want +got):\n%s", diff)
			}
		})
	}

	// Both engines at once: the ed25519 signature alone suffices when the GPG key is unknown.
	bobOnly, _ := sign.NewGPGVerifier(later, bobPub)
	res, err := sign.Verify(v.c1, meta, bobOnly, sign.NewEd25519Verifier([]sign.PublicKey{mustPublic(t, specPublic)}, nil))
	if err != nil || res.Engine != sign.EngineEd25519 || res.Key != specPublic {
		t.Errorf("Verify with gpg (bob) and ed25519 verifiers = %+v, %v; want the ed25519 signature", res, err)
	}

	ring, _ := sign.NewGPGVerifier(nil, twoArmored)
	if diff := cmp.Diff([]string{fpr(bob), fpr(alice)}, ring.Fingerprints()); diff != "" {
		t.Errorf("Fingerprints() (-want +got):\n%s", diff)
	}
}

func mustAdd(t *testing.T, meta []byte, key string, sig []byte) []byte {
	t.Helper()
	out, err := sign.AddSignature(meta, key, sig)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestGPGKeyringErrors(t *testing.T) {
	t.Parallel()
	alice, alicePub, aliceSec := newGPGKey(t, "alice")
	_, _, bobSec := newGPGKey(t, "bob")
	protected, _, _ := newGPGKey(t, "carol")
	if err := protected.EncryptPrivateKeys([]byte("passphrase"), nil); err != nil {
		t.Fatal(err)
	}
	var protectedSec bytes.Buffer
	if err := protected.SerializePrivateWithoutSigning(&protectedSec, nil); err != nil {
		t.Fatal(err)
	}
	twoSecrets := append(append([]byte(nil), aliceSec...), bobSec...)

	verifierTests := []struct {
		name    string
		keyring []byte
	}{
		{name: "garbage", keyring: []byte("not a keyring")},
		{name: "empty", keyring: nil},
		{name: "armored signature, not a key", keyring: []byte("-----BEGIN PGP SIGNATURE-----\n\nAAAA\n-----END PGP SIGNATURE-----\n")},
	}
	for _, tt := range verifierTests {
		t.Run("verifier/"+tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := sign.NewGPGVerifier(nil, tt.keyring); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("NewGPGVerifier(%q) error = %v, want ErrInvalid", tt.keyring, err)
			}
		})
	}

	signerTests := []struct {
		name    string
		keyring []byte
		keyID   string
		want    error
	}{
		{name: "public key only", keyring: alicePub, want: errdefs.ErrNotFound},
		{name: "no such key ID", keyring: aliceSec, keyID: "0123456789ABCDEF", want: errdefs.ErrNotFound},
		{name: "two secret keys, no key ID", keyring: twoSecrets, want: errdefs.ErrInvalid},
		{name: "two secret keys, lower-case 0x key ID", keyring: twoSecrets, keyID: "0x" + strings.ToLower(fpr(alice)[24:])},
		{name: "passphrase-protected", keyring: protectedSec.Bytes(), want: errdefs.ErrUnsupported},
	}
	for _, tt := range signerTests {
		t.Run("signer/"+tt.name, func(t *testing.T) {
			t.Parallel()
			s, err := sign.NewGPGSigner(nil, tt.keyring, tt.keyID)
			if tt.want != nil {
				if !errors.Is(err, tt.want) {
					t.Errorf("NewGPGSigner(%s, %q) error = %v, want %v", tt.name, tt.keyID, err, tt.want)
				}
				return
			}
			if err != nil || s.Fingerprint() != fpr(alice) {
				t.Errorf("NewGPGSigner(%s, %q) = %v, %v; want alice's key", tt.name, tt.keyID, s, err)
			}
		})
	}
}

// FuzzGPGIssuer: reading the issuer of arbitrary signature bytes, and verifying them, never
// panics, and failures have the documented classes.
func FuzzGPGIssuer(f *testing.F) {
	m, err := sign.ParseMetadata(loadVectors(f).c1GPG)
	if err != nil {
		f.Fatal(err)
	}
	sigs, err := m.Signatures(sign.MetadataKeyGPG)
	if err != nil || len(sigs) != 1 {
		f.Fatalf("sample signatures = %d, %v", len(sigs), err)
	}
	f.Add(sigs[0])
	f.Add([]byte{})
	ver, err := sign.NewGPGVerifier(later)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, sig []byte) {
		if _, err := sign.GPGIssuer(sig); err != nil && !errors.Is(err, errdefs.ErrInvalid) {
			t.Fatalf("GPGIssuer(%x) error = %v, not ErrInvalid", sig, err)
		}
		if _, err := ver.VerifySignature([]byte("data"), sig); !errors.Is(err, sign.ErrUntrusted) {
			t.Fatalf("VerifySignature(%x) with an empty keyring error = %v, want ErrUntrusted", sig, err)
		}
	})
}
