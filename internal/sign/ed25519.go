package sign

import (
	"crypto/ed25519"
	"fmt"
)

var (
	_ Signer   = (*Ed25519Signer)(nil)
	_ Verifier = (*Ed25519Verifier)(nil)
)

// Ed25519Signer signs with ostree's ed25519 engine: a 64-byte pure Ed25519 signature (RFC 8032,
// libsodium's crypto_sign_detached) under MetadataKeyEd25519.
type Ed25519Signer struct {
	key SecretKey
}

// NewEd25519Signer returns a signer for key.
func NewEd25519Signer(key SecretKey) *Ed25519Signer { return &Ed25519Signer{key: key} }

// Name returns EngineEd25519.
func (s *Ed25519Signer) Name() string { return EngineEd25519 }

// MetadataKey returns MetadataKeyEd25519.
func (s *Ed25519Signer) MetadataKey() string { return MetadataKeyEd25519 }

// PublicKey returns the key that verifies this signer's signatures.
func (s *Ed25519Signer) PublicKey() PublicKey { return s.key.Public() }

// Sign returns the signature of data. Ed25519 signing is deterministic and cannot fail; the
// error is there for the Signer interface.
func (s *Ed25519Signer) Sign(data []byte) ([]byte, error) {
	return ed25519.Sign(ed25519.PrivateKey(s.key[:]), data), nil
}

// Ed25519Verifier verifies ed25519 signatures against a set of trusted public keys, minus
// revoked ones, like ostree's verification-ed25519-key/-file and revoked.ed25519 files.
type Ed25519Verifier struct {
	trusted []PublicKey
	revoked map[PublicKey]bool
}

// NewEd25519Verifier returns a verifier trusting trusted except the keys in revoked (either
// may be nil). A revoked key never counts, even when it is also listed as trusted.
func NewEd25519Verifier(trusted, revoked []PublicKey) *Ed25519Verifier {
	v := &Ed25519Verifier{trusted: append([]PublicKey(nil), trusted...), revoked: map[PublicKey]bool{}}
	for _, k := range revoked {
		v.revoked[k] = true
	}
	return v
}

// Name returns EngineEd25519.
func (v *Ed25519Verifier) Name() string { return EngineEd25519 }

// MetadataKey returns MetadataKeyEd25519.
func (v *Ed25519Verifier) MetadataKey() string { return MetadataKeyEd25519 }

// VerifySignature returns the base64 public key of the trusted key that made sig over data.
//
// crypto/ed25519 and libsodium agree on every signature a real signer makes; they can differ
// only on crafted signatures under small-order public keys, which no trusted-key file holds.
func (v *Ed25519Verifier) VerifySignature(data, sig []byte) (string, error) {
	if len(sig) != ed25519.SignatureSize {
		return "", fmt.Errorf("signature of %d bytes, want %d: %w", len(sig), ed25519.SignatureSize, ErrUntrusted)
	}
	var revokedSigner *PublicKey
	n := 0
	for _, k := range v.trusted {
		if !ed25519.Verify(ed25519.PublicKey(k[:]), data, sig) {
			if !v.revoked[k] {
				n++
			}
			continue
		}
		if v.revoked[k] {
			revokedSigner = &k
			continue
		}
		return k.String(), nil
	}
	if revokedSigner != nil {
		return "", fmt.Errorf("made by revoked key %s: %w", revokedSigner, ErrUntrusted)
	}
	if n == 1 {
		return "", fmt.Errorf("not made by the trusted key: %w", ErrUntrusted)
	}
	return "", fmt.Errorf("not made by any of %d trusted keys: %w", n, ErrUntrusted)
}
