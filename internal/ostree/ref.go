package ostree

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// refPattern is libostree's ref grammar (docs/formats/repository.md).
var refPattern = regexp.MustCompile(`^(?:[\w\d][-._\w\d]*/)*[\w\d][-._\w\d]*$`)

// ValidateRef checks a ref name such as "os/x86_64/stable". A name that
// looks like a checksum is refused, as libostree does, so that a revision
// argument is never ambiguous.
func ValidateRef(name string) error {
	if !refPattern.MatchString(name) {
		return fmt.Errorf("ref %q: invalid name: %w", name, errdefs.ErrInvalid)
	}
	if IsChecksum(name) {
		return fmt.Errorf("ref %q: looks like a checksum: %w", name, errdefs.ErrInvalid)
	}
	return nil
}

// ParseRefspec splits "REMOTE:REF" into its parts; remote is "" for a
// local ref.
func ParseRefspec(spec string) (remote, ref string, err error) {
	if i := strings.IndexByte(spec, ':'); i >= 0 {
		remote, ref = spec[:i], spec[i+1:]
		if remote == "" || strings.Contains(remote, "/") {
			return "", "", fmt.Errorf("refspec %q: invalid remote: %w", spec, errdefs.ErrInvalid)
		}
	} else {
		ref = spec
	}
	return remote, ref, ValidateRef(ref)
}
