// Package errdefs defines the error classes shared by every strata package.
//
// A class is attached by wrapping ("ref %q: %w" with ErrNotFound) and tested
// with errors.Is. Edges (CLI, node API) map classes to exit codes and wire
// codes in one place. Layer L0: imports only the standard library.
package errdefs

import "errors"

// The error classes. Wrap them; never compare with ==.
var (
	ErrNotFound           = errors.New("not found")
	ErrAlreadyExists      = errors.New("already exists")
	ErrInvalid            = errors.New("invalid")
	ErrFailedPrecondition = errors.New("failed precondition")
	ErrConflict           = errors.New("conflict")
	ErrUnavailable        = errors.New("unavailable")
	ErrUnsupported        = errors.New("unsupported")
	ErrCorrupt            = errors.New("corrupt")
)
