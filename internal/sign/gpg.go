package sign

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/strata-os/strata/internal/errdefs"
)

var (
	_ Signer   = (*GPGSigner)(nil)
	_ Verifier = (*GPGVerifier)(nil)
)

// GPGVerifier verifies the OpenPGP signatures of ostree's gpg engine: each element of the
// MetadataKeyGPG aay is one binary (non-armored) detached signature over the signed bytes, as
// `ostree gpg-sign` writes it (docs/formats/signatures.md). A signature counts when it verifies
// with a key of the keyring that is neither expired nor revoked at the verifier's clock, and
// the signature itself has not expired.
type GPGVerifier struct {
	keyring openpgp.EntityList
	now     func() time.Time
}

// NewGPGVerifier returns a verifier trusting the keys of the given keyrings, each the content
// of a keyring file: binary (like ostree's trusted.gpg.d/*.gpg and remote .trustedkeys.gpg) or
// ASCII-armored, with one or more key blocks. now is the clock used for expiry and revocation;
// nil means time.Now.
func NewGPGVerifier(now func() time.Time, keyrings ...[]byte) (*GPGVerifier, error) {
	var all openpgp.EntityList
	for i, kr := range keyrings {
		el, err := parseKeyring(kr)
		if err != nil {
			return nil, fmt.Errorf("reading OpenPGP keyring %d: %w", i+1, err)
		}
		all = append(all, el...)
	}
	return &GPGVerifier{keyring: all, now: now}, nil
}

// Name returns EngineGPG.
func (v *GPGVerifier) Name() string { return EngineGPG }

// MetadataKey returns MetadataKeyGPG.
func (v *GPGVerifier) MetadataKey() string { return MetadataKeyGPG }

// Fingerprints returns the primary-key fingerprints of the trusted keys, in upper-case hex.
func (v *GPGVerifier) Fingerprints() []string {
	out := make([]string, len(v.keyring))
	for i, e := range v.keyring {
		out[i] = fingerprint(e.PrimaryKey)
	}
	return out
}

// VerifySignature returns the primary-key fingerprint of the trusted key whose primary key or
// signing subkey made sig over data.
func (v *GPGVerifier) VerifySignature(data, sig []byte) (string, error) {
	issuer, err := gpgIssuer(sig)
	if err != nil {
		// Not ErrInvalid: the metadata is well-formed; only this signature is unusable.
		return "", fmt.Errorf("%w: %w", err, ErrUntrusted)
	}
	cfg := &packet.Config{Time: v.now}
	_, signer, err := openpgp.VerifyDetachedSignature(v.keyring, bytes.NewReader(data), bytes.NewReader(sig), cfg)
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return "", fmt.Errorf("made by unknown key %s: %w", issuer, ErrUntrusted)
	case err != nil:
		return "", fmt.Errorf("by key %s: %w: %w", issuer, err, ErrUntrusted)
	}
	return fingerprint(signer.PrimaryKey), nil
}

// GPGIssuer returns the issuer of a binary OpenPGP signature: the fingerprint of the key that
// made it in upper-case hex, or its 16-digit key ID when the signature names no fingerprint.
// It checks the framing only, not the signature. ostree stores one signature packet per
// element; of a blob with several, the first is read. A blob that does not start with a
// signature packet wraps errdefs.ErrInvalid.
func GPGIssuer(sig []byte) (string, error) {
	issuer, err := gpgIssuer(sig)
	if err != nil {
		return "", fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	return issuer, nil
}

// gpgIssuer is GPGIssuer with errors that carry no class.
func gpgIssuer(sig []byte) (string, error) {
	r := bytes.NewReader(sig)
	p, err := packet.Read(r)
	if err != nil {
		return "", fmt.Errorf("malformed OpenPGP signature: %w", err)
	}
	s, ok := p.(*packet.Signature)
	if !ok {
		return "", fmt.Errorf("malformed OpenPGP signature: a %T packet", p)
	}
	switch {
	case len(s.IssuerFingerprint) > 0:
		return fmt.Sprintf("%X", s.IssuerFingerprint), nil
	case s.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *s.IssuerKeyId), nil
	}
	return "", errors.New("malformed OpenPGP signature: no issuer")
}

// GPGSigner makes binary detached OpenPGP signatures, as `ostree gpg-sign` stores them.
type GPGSigner struct {
	entity *openpgp.Entity
	now    func() time.Time
}

// NewGPGSigner returns a signer for the secret key named keyID in secretKeyring (binary or
// armored, as `gpg --export-secret-keys` writes it). keyID is a fingerprint or key ID in hex,
// matched as a suffix of the fingerprint of the primary key or any subkey; it may be empty when
// the keyring holds one secret key. Passphrase-protected keys are not supported
// (errdefs.ErrUnsupported): signing runs unattended. now is the clock stamped into signatures;
// nil means time.Now.
func NewGPGSigner(now func() time.Time, secretKeyring []byte, keyID string) (*GPGSigner, error) {
	el, err := parseKeyring(secretKeyring)
	if err != nil {
		return nil, fmt.Errorf("reading OpenPGP secret keyring: %w", err)
	}
	want := strings.ToUpper(strings.TrimPrefix(strings.ReplaceAll(keyID, " ", ""), "0x"))
	var found []*openpgp.Entity
	for _, e := range el {
		if e.PrivateKey != nil && (want == "" || entityMatches(e, want)) {
			found = append(found, e)
		}
	}
	if len(found) != 1 {
		err := errdefs.ErrNotFound
		if len(found) > 1 {
			err = errdefs.ErrInvalid
		}
		return nil, fmt.Errorf("OpenPGP secret keyring has %d secret keys matching %q, want 1: %w", len(found), keyID, err)
	}
	e := found[0]
	cfg := &packet.Config{Time: now}
	k, ok := e.SigningKey(cfg.Now())
	if !ok || k.PrivateKey == nil || k.PrivateKey.Dummy() {
		return nil, fmt.Errorf("OpenPGP key %s has no usable secret signing key: %w", fingerprint(e.PrimaryKey), errdefs.ErrInvalid)
	}
	if k.PrivateKey.Encrypted {
		return nil, fmt.Errorf("OpenPGP key %s is passphrase-protected: %w", fingerprint(e.PrimaryKey), errdefs.ErrUnsupported)
	}
	return &GPGSigner{entity: e, now: now}, nil
}

// Name returns EngineGPG.
func (s *GPGSigner) Name() string { return EngineGPG }

// MetadataKey returns MetadataKeyGPG.
func (s *GPGSigner) MetadataKey() string { return MetadataKeyGPG }

// Fingerprint returns the primary-key fingerprint of the signing key, in upper-case hex.
func (s *GPGSigner) Fingerprint() string { return fingerprint(s.entity.PrimaryKey) }

// Sign returns a binary detached signature of data (signature type 0x00, binary document).
func (s *GPGSigner) Sign(data []byte) ([]byte, error) {
	var buf bytes.Buffer
	if err := openpgp.DetachSign(&buf, s.entity, bytes.NewReader(data), &packet.Config{Time: s.now}); err != nil {
		return nil, fmt.Errorf("signing with OpenPGP key %s: %w", s.Fingerprint(), err)
	}
	return buf.Bytes(), nil
}

func fingerprint(pk *packet.PublicKey) string { return fmt.Sprintf("%X", pk.Fingerprint) }

func entityMatches(e *openpgp.Entity, want string) bool {
	if strings.HasSuffix(fingerprint(e.PrimaryKey), want) {
		return true
	}
	for _, sk := range e.Subkeys {
		if strings.HasSuffix(fingerprint(sk.PublicKey), want) {
			return true
		}
	}
	return false
}

// parseKeyring reads binary or armored OpenPGP keys; an armored file may hold several blocks.
func parseKeyring(b []byte) (openpgp.EntityList, error) {
	var el openpgp.EntityList
	if !bytes.HasPrefix(bytes.TrimSpace(b), []byte("-----BEGIN ")) {
		var err error
		if el, err = openpgp.ReadKeyRing(bytes.NewReader(b)); err != nil {
			return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
		}
	} else {
		// armor.Decode keeps reading through a *bufio.Reader it is given, so consecutive
		// blocks decode from one stream.
		br := bufio.NewReader(bytes.NewReader(b))
		for {
			block, err := armor.Decode(br)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
			}
			if block.Type != openpgp.PublicKeyType && block.Type != openpgp.PrivateKeyType {
				return nil, fmt.Errorf("armored block %q is not a key: %w", block.Type, errdefs.ErrInvalid)
			}
			more, err := openpgp.ReadKeyRing(block.Body)
			if err != nil {
				return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
			}
			// Read the rest of the block, checksum included, before the next one.
			if _, err := io.Copy(io.Discard, block.Body); err != nil {
				return nil, fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
			}
			el = append(el, more...)
		}
	}
	if len(el) == 0 {
		return nil, fmt.Errorf("no keys: %w", errdefs.ErrInvalid)
	}
	return el, nil
}
