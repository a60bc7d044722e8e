//go:build peer

package agent

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// The node id equals what systemd computes for this host's machine id.
func TestAppSpecificIDSystemd(t *testing.T) {
	bin := testutil.RequireTool(t, "systemd-id128", "systemd")
	if _, err := os.Stat("/etc/machine-id"); err != nil {
		t.Fatalf("this host has no /etc/machine-id to compare with (run systemd-machine-id-setup): %v", err)
	}
	out, err := exec.Command(bin, "machine-id", "-a", AppID).Output()
	if err != nil {
		t.Fatalf("systemd-id128 machine-id -a: %v", err)
	}
	got, err := NodeID("/", Defaults())
	if err != nil || got != strings.TrimSpace(string(out)) {
		t.Errorf("NodeID(/) = %q, %v; systemd-id128 says %s", got, err, out)
	}
}
