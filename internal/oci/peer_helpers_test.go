//go:build peer

package oci

import (
	"os/exec"
	"testing"

	"github.com/strata-os/strata/internal/oci/ocitest"
)

// startRegistry is ocitest.StartRegistry.
func startRegistry(t *testing.T, secure bool) *ocitest.Registry {
	return ocitest.StartRegistry(t, secure)
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("%s %v: %v\n%s", name, args, err, stderr)
	}
	return out
}
