//go:build peer

package xzenc

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestRoundTripXZUtils decodes and tests each corpus's stream with
// Debian's xz-utils (liblzma).
func TestRoundTripXZUtils(t *testing.T) {
	xz := testutil.RequireTool(t, "xz", "xz-utils")
	for _, c := range corpora(t) {
		t.Run(c.name, func(t *testing.T) {
			xzb := encodeCorpus(t, c)
			f := filepath.Join(t.TempDir(), "s.xz")
			if err := os.WriteFile(f, xzb, 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(xz, "-t", "-v", f).CombinedOutput(); err != nil {
				t.Fatalf("xz -t: %v: %s", err, out)
			}
			cmd := exec.Command(xz, "-d", "-c")
			cmd.Stdin = bytes.NewReader(xzb)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			got, err := cmd.Output()
			if err != nil {
				t.Fatalf("xz -d: %v: %s", err, stderr.Bytes())
			}
			if !bytes.Equal(got, c.data) {
				t.Fatalf("xz -d gave %d bytes, not the %d encoded", len(got), len(c.data))
			}
			// xz --list reads the index and the check type.
			out, err := exec.Command(xz, "--robot", "--list", f).Output()
			if err != nil {
				t.Fatalf("xz --list: %v", err)
			}
			if len(c.data) > 0 && !bytes.Contains(out, []byte("CRC64")) {
				t.Fatalf("xz --list does not report a CRC64 check:\n%s", out)
			}
		})
	}
}
