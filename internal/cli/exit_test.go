package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sign"
)

// TestClassify maps each error class to its exit code, through wrapping.
func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		err       error
		wantClass string
		wantCode  int
	}{
		{"usage", usagef("missing REV"), "usage", exitUsage},
		{"required flag", errors.New(`required flag(s) "repo" not set`), "usage", exitUsage},
		{"invalid", fmt.Errorf("reading k: %w", errdefs.ErrInvalid), "invalid", exitInvalid},
		{"corrupt", fmt.Errorf("object x: %w", errdefs.ErrCorrupt), "corrupt", exitCorrupt},
		{"corrupt before invalid", fmt.Errorf("a: %w: %w", errdefs.ErrInvalid, errdefs.ErrCorrupt), "corrupt", exitCorrupt},
		{"unavailable", fmt.Errorf("GET x: %w", errdefs.ErrUnavailable), "unavailable", exitUnavailable},
		{"not found", fmt.Errorf("ref x: %w", errdefs.ErrNotFound), "not_found", exitFailure},
		{"untrusted", fmt.Errorf("verifying: %w", sign.ErrUntrusted), "failed_precondition", exitFailure},
		{"unclassed", errors.New("boom"), "failure", exitFailure},
		{"nothing new", exitCodeError{code: exitUnchanged}, "", exitUnchanged},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if class, code := classify(tt.err); class != tt.wantClass || code != tt.wantCode {
				t.Errorf("classify(%v) = %q, %d; want %q, %d", tt.err, class, code, tt.wantClass, tt.wantCode)
			}
		})
	}
}

// TestMessage drops class words only where the phrase before them says
// the same already.
func TestMessage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want string
	}{
		{fmt.Errorf("reading k: open k: no such file or directory: %w", errdefs.ErrNotFound), "reading k: open k: no such file or directory"},
		{fmt.Errorf(`invalid ref name "a b": %w`, errdefs.ErrInvalid), `invalid ref name "a b"`},
		{fmt.Errorf(`ref "x": %w`, errdefs.ErrNotFound), `ref "x": not found`},
		{fmt.Errorf("rolling back: 1 deployments, need 2: %w", errdefs.ErrFailedPrecondition), "rolling back: 1 deployments, need 2"},
		{fmt.Errorf("remote name %q: %w", "a b", errdefs.ErrInvalid), `remote name "a b": invalid`},
		{fmt.Errorf("GET u: %w: %w", errdefs.ErrUnavailable, errors.New("dial tcp: connection refused")), "GET u: dial tcp: connection refused"},
		{fmt.Errorf("GET u: HTTP 503: %w", errdefs.ErrUnavailable), "GET u: HTTP 503: unavailable"},
	}
	for _, tt := range tests {
		if got := message(tt.err); got != tt.want {
			t.Errorf("message(%q) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

// TestJSONError: with --json an error is one JSON object on stderr, with
// its class, message and exit code; nothing goes to stdout.
func TestJSONError(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/bad.key", []byte("not base64!\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := inspRun(t, "repo", "keygen", "--out", dir+"/missing/k", "--json")
	if code == exitOK {
		t.Fatalf("strata repo keygen into a missing directory = exit 0, want an error")
	}
	var got errorJSON
	if err := json.Unmarshal([]byte(errOut), &got); err != nil || out != "" {
		t.Fatalf("strata repo keygen --json error: stdout %q, stderr %q (%v); want one JSON object on stderr", out, errOut, err)
	}
	if got.Error.ExitCode != code || got.Error.Class == "" || got.Error.Message == "" {
		t.Errorf("JSON error = %+v, exit %d; want class, message and exit_code %d", got.Error, code, code)
	}
	_, errOut, code = inspRun(t, "repo", "show", "--json")
	if err := json.Unmarshal([]byte(errOut), &got); err != nil || got.Error.Class != "usage" || code != exitUsage {
		t.Errorf("strata repo show --json (no REV) = exit %d, stderr %q; want a usage error as JSON", code, errOut)
	}
}
