//go:build root

package testutil

import (
	"os"
	"testing"
)

func TestRequireRoot(t *testing.T) {
	t.Parallel()
	if msg := runRecorded(t, RequireRoot); msg != "" {
		t.Fatalf("RequireRoot as euid %d: %s", os.Geteuid(), msg)
	}
}
