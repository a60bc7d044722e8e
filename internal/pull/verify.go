package pull

import (
	"github.com/strata-os/strata/internal/sign"
)

// signatures is a Verifier over the signature engines of package sign.
type signatures []sign.Verifier

var _ Verifier = signatures(nil)

// Signatures returns a Verifier that accepts data when any signature in
// its detached metadata verifies with a trusted key of any of the
// verifiers (sign.Verify): the rule libostree applies to commits and to
// summary.sig (docs/formats/signatures.md).
func Signatures(verifiers ...sign.Verifier) Verifier { return signatures(verifiers) }

func (s signatures) Verify(data, detached []byte) (string, error) {
	res, err := sign.Verify(data, detached, s...)
	if err != nil {
		return "", err
	}
	return res.Engine + ":" + res.Key, nil
}
