package sign

import (
	"errors"
	"fmt"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// Engine names, as ostree's `sign --sign-type` spells them.
const (
	EngineEd25519 = "ed25519"
	EngineGPG     = "gpg"
)

// Verification outcomes, besides malformed metadata (errdefs.ErrInvalid). Both are also
// errdefs.ErrFailedPrecondition: the data may be fine, but the required signature is not there.
var (
	// ErrNoSignature: the detached metadata holds no signature under any verifier's key.
	ErrNoSignature error = &classError{msg: "no signatures", class: errdefs.ErrFailedPrecondition}
	// ErrUntrusted: signatures are present but none verifies with a trusted, unrevoked key,
	// whether the key is unknown or the data or signature was altered.
	ErrUntrusted error = &classError{msg: "untrusted", class: errdefs.ErrFailedPrecondition}
)

// classError is a sentinel that also belongs to an errdefs class.
type classError struct {
	msg   string
	class error
}

func (e *classError) Error() string { return e.msg }
func (e *classError) Unwrap() error { return e.class }

// Signer makes detached signatures for one engine. Name is the engine name (EngineEd25519,
// EngineGPG) and MetadataKey the detached-metadata key its signatures go under.
//
// A commit is signed by signing the exact bytes of the commit object and appending the
// signature to the commit's .commitmeta; a summary by signing the summary file and appending
// to summary.sig (docs/formats/signatures.md):
//
//	meta, err := sign.Append(oldMeta, commitBytes, sign.NewEd25519Signer(key))
type Signer interface {
	Name() string
	MetadataKey() string
	Sign(data []byte) ([]byte, error)
}

// Verifier checks the detached signatures of one engine against its trusted keys.
// VerifySignature checks one signature over data; it returns the key that made it, spelled as
// the engine spells keys (base64 public key for ed25519, fingerprint for gpg), or an error
// wrapping ErrUntrusted.
type Verifier interface {
	Name() string
	MetadataKey() string
	VerifySignature(data, sig []byte) (key string, err error)
}

// Result says which signature was accepted.
type Result struct {
	Engine string // Name of the verifier that accepted the signature
	Key    string // the trusted key that made it, as returned by VerifySignature
	Index  int    // position of the signature in the engine's aay
}

// Verify checks data (commit object or summary bytes) against its detached metadata. It
// succeeds when any signature under any verifier's key verifies with any of that verifier's
// trusted keys, as ostree does (docs/formats/signatures.md). Otherwise the error wraps
// errdefs.ErrInvalid for malformed metadata, ErrNoSignature when there is no signature to
// check, or ErrUntrusted with the reason for each signature.
func Verify(data, detachedMeta []byte, verifiers ...Verifier) (Result, error) {
	if len(verifiers) == 0 {
		return Result{}, errors.New("internal error: Verify without verifiers")
	}
	meta, err := ParseMetadata(detachedMeta)
	if err != nil {
		return Result{}, err
	}
	var (
		failures []error
		keys     []string
	)
	for _, v := range verifiers {
		keys = append(keys, v.MetadataKey())
		sigs, err := meta.Signatures(v.MetadataKey())
		if err != nil {
			return Result{}, err
		}
		for i, sig := range sigs {
			key, err := v.VerifySignature(data, sig)
			if err == nil {
				return Result{Engine: v.Name(), Key: key, Index: i}, nil
			}
			failures = append(failures, fmt.Errorf("%s signature %d of %d: %w", v.Name(), i+1, len(sigs), err))
		}
	}
	if len(failures) == 0 {
		return Result{}, fmt.Errorf("detached metadata has %w under %s", ErrNoSignature, strings.Join(keys, ", "))
	}
	err = errors.Join(failures...)
	if !errors.Is(err, ErrUntrusted) {
		err = fmt.Errorf("%w: %w", ErrUntrusted, err)
	}
	return Result{}, err
}

// Append signs data with each signer and appends the signatures to the encoded detached
// metadata meta (see AddSignature).
func Append(meta, data []byte, signers ...Signer) ([]byte, error) {
	m, err := ParseMetadata(meta)
	if err != nil {
		return nil, err
	}
	for _, s := range signers {
		sig, err := s.Sign(data)
		if err != nil {
			return nil, fmt.Errorf("signing with %s: %w", s.Name(), err)
		}
		if m, err = m.AddSignature(s.MetadataKey(), sig); err != nil {
			return nil, err
		}
	}
	return m.Marshal()
}
