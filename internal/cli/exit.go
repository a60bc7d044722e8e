package cli

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// The command line's edge: error classes (internal/errdefs) map to exit
// codes here and nowhere else. README.md lists the table.
const (
	exitOK          = 0
	exitFailure     = 1  // any other error
	exitUsage       = 2  // the command line itself is wrong
	exitInvalid     = 3  // invalid input: a file, argument value or config that is malformed
	exitCorrupt     = 4  // stored data failed its checksum or structure checks
	exitUnavailable = 5  // a server or network failed; retrying may help
	exitUnchanged   = 77 // a check found nothing new (rpm-ostree's --unchanged-exit-77)
	// exitNothingFetched: an upgrade whose origin follows no remote (a local ref or a pinned
	// commit) left the deployment where it was; distinct from 77, which says a remote was
	// asked and had nothing new.
	exitNothingFetched = 78
)

// exitCodeError ends a command that has said all it had to say with a
// specific exit code.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError marks an error as a usage mistake (exit code 2).
type usageError struct{ error }

func (e usageError) Unwrap() error { return e.error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// classes are the error classes in the order they are tested: the first
// that an error matches names it. A corrupt object found while parsing
// input is corrupt before it is invalid.
var classes = []struct {
	name string
	err  error
	code int
}{
	{"corrupt", errdefs.ErrCorrupt, exitCorrupt},
	{"invalid", errdefs.ErrInvalid, exitInvalid},
	{"unavailable", errdefs.ErrUnavailable, exitUnavailable},
	{"not_found", errdefs.ErrNotFound, exitFailure},
	{"already_exists", errdefs.ErrAlreadyExists, exitFailure},
	{"failed_precondition", errdefs.ErrFailedPrecondition, exitFailure},
	{"conflict", errdefs.ErrConflict, exitFailure},
	{"unsupported", errdefs.ErrUnsupported, exitFailure},
}

// classify returns the class name and exit code of err.
func classify(err error) (string, int) {
	var ec exitCodeError
	if errors.As(err, &ec) {
		return "", ec.code
	}
	var ue usageError
	if errors.As(err, &ue) || strings.HasPrefix(err.Error(), "required flag(s)") {
		return "usage", exitUsage
	}
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.name, c.code
		}
	}
	return "failure", exitFailure
}

// reportError prints err on w, as text or as a JSON object, and returns
// the exit code.
func reportError(w io.Writer, err error, asJSON bool) int {
	class, code := classify(err)
	var ec exitCodeError
	if errors.As(err, &ec) {
		return code // the command has printed its result already
	}
	msg := message(err)
	if asJSON {
		var out errorJSON
		out.Error.Class, out.Error.Message, out.Error.ExitCode = class, msg, code
		if writeJSON(w, out) == nil {
			return code
		}
	}
	fmt.Fprintf(w, "strata: %s\n", msg)
	return code
}

// redundant says, for each class word that wrapping glues onto a message,
// which words of the phrase before it already say the same: "open k: no
// such file or directory: not found" reads "open k: no such file or
// directory", while "ref "x": not found" keeps its class word. The class
// stays in the exit code and the JSON error's class.
var redundant = map[string][]string{
	errdefs.ErrNotFound.Error():           {"no such file", "not found", "does not exist", "no "},
	errdefs.ErrInvalid.Error():            {"invalid", "malformed", "want ", "not a", "not base64", "that is"},
	errdefs.ErrAlreadyExists.Error():      {"exists"},
	errdefs.ErrCorrupt.Error():            {"corrupt"},
	errdefs.ErrUnsupported.Error():        {"unsupported", "not supported"},
	errdefs.ErrUnavailable.Error():        {"unavailable"},
	errdefs.ErrConflict.Error():           {"locked", "conflict"},
	errdefs.ErrFailedPrecondition.Error(): {""},
}

// message is err's text without class words that repeat what the phrase
// before them says.
func message(err error) string {
	parts := strings.Split(err.Error(), ": ")
	out := parts[:1]
	for i, p := range parts[1:] {
		if words, ok := redundant[p]; ok && saysAlready(out[len(out)-1], words) {
			continue
		}
		if p == errdefs.ErrUnavailable.Error() && i+2 < len(parts) {
			continue // the network error that follows says it better
		}
		out = append(out, p)
	}
	return strings.Join(out, ": ")
}

func saysAlready(phrase string, words []string) bool {
	for _, w := range words {
		if strings.Contains(phrase, w) {
			return true
		}
	}
	return false
}
