package sysroot

import (
	"fmt"
	"os"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// DefaultOS returns the stateroot an operation acts on when none is
// named: the booted deployment's, else the only stateroot directory under
// ostree/deploy (ostree admin deploy's rule). With none or several and
// nothing booted the choice is the caller's: the error wraps
// errdefs.ErrFailedPrecondition and names the stateroots found.
func (s *Sysroot) DefaultOS() (string, error) {
	if b, ok := s.Booted(); ok {
		return b.OSName, nil
	}
	ents, err := os.ReadDir(s.abs("ostree/deploy"))
	if err != nil {
		return "", fmt.Errorf("listing the stateroots of %s: %w", s.path, err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	switch len(names) {
	case 1:
		return names[0], nil
	case 0:
		return "", fmt.Errorf("sysroot %s has no stateroot: %w", s.path, errdefs.ErrFailedPrecondition)
	}
	return "", fmt.Errorf("sysroot %s has %d stateroots (%s) and none is booted: %w",
		s.path, len(names), strings.Join(names, ", "), errdefs.ErrFailedPrecondition)
}
