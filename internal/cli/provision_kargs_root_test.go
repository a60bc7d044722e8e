//go:build root

package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/testutil"
)

// TestKargsProvisioned: the kernel arguments a first-boot config asked for (pending in the
// physical root) are set on the default deployment once: missing shouldExist appended,
// present shouldNotExist deleted, the pending record cleared; a second run changes nothing.
func TestKargsProvisioned(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	sys := filepath.Join(t.TempDir(), "sys")
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	publishMustRun(t, "repo", "commit", "--repo", filepath.Join(sys, "ostree/repo"), "--branch", "testos/stable",
		"--tree", nodeTree(t, "1"), "--metadata", "version=1", "--timestamp", "1700000001")
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "testos/stable", "--karg", "root=LABEL=root", "--karg", "quiet",
		"--karg", "console=ttyS0")

	if out := publishMustRun(t, "kargs", "--sysroot", sys, "--provisioned"); !strings.Contains(out, "no kernel arguments") {
		t.Errorf("kargs --provisioned without a pending record printed %q, want no kernel arguments to set", out)
	}
	pending := filepath.Join(sys, provconfig.KargsPending)
	if err := os.MkdirAll(filepath.Dir(pending), 0o700); err != nil {
		t.Fatal(err)
	}
	ka := `{"shouldExist":["console=ttyS0","systemd.unified_cgroup_hierarchy=1"],"shouldNotExist":["quiet","splash"]}`
	if err := os.WriteFile(pending, []byte(ka), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := publishRun(t, "kargs", "--sysroot", sys, "--provisioned", "--append", "x"); code != exitUsage {
		t.Errorf("kargs --provisioned --append = exit %d (%q), want usage", code, errs)
	}
	out := publishMustRun(t, "kargs", "--sysroot", sys, "--provisioned")
	if !strings.Contains(out, `added ["systemd.unified_cgroup_hierarchy=1"], deleted ["quiet"]`) {
		t.Errorf("kargs --provisioned printed %q, want the one argument added and the one deleted", out)
	}
	if got, want := nodeStatus(t, sys).Deployments[0].Kargs, []string{"root=LABEL=root", "console=ttyS0", "systemd.unified_cgroup_hierarchy=1"}; !slices.Equal(got, want) {
		t.Errorf("kargs after --provisioned = %q, want %q", got, want)
	}
	if _, err := os.Stat(pending); !os.IsNotExist(err) {
		t.Errorf("%s after --provisioned: %v, want it removed", provconfig.KargsPending, err)
	}
	// After a crash between the edit and the removal, the re-run finds them set.
	if err := os.WriteFile(pending, []byte(ka), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := publishMustRun(t, "kargs", "--sysroot", sys, "--provisioned", "--reboot"); !strings.Contains(out, "already set") {
		t.Errorf("kargs --provisioned again printed %q, want already set (and no reboot)", out)
	}
}
