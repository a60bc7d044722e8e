//go:build root

package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// undeploy refuses, without --force, to remove a pinned deployment or the
// last one, and says how to do it anyway.
func TestUndeployProtectsPinnedAndLast(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	sys := filepath.Join(t.TempDir(), "sys")
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	for _, v := range []string{"1", "2"} {
		publishMustRun(t, "repo", "commit", "--repo", filepath.Join(sys, "ostree/repo"), "--branch", "testos/stable",
			"--tree", nodeTree(t, v), "--timestamp", "170000000"+v)
		publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "testos/stable")
	}
	publishMustRun(t, "pin", "--sysroot", sys, "1")

	code, _, errs := publishRun(t, "undeploy", "--sysroot", sys, "1")
	if code != exitFailure || !strings.Contains(errs, "pinned") || !strings.Contains(errs, "--force") {
		t.Errorf("undeploy of a pinned deployment = exit %d (%q), want %d saying it is pinned and naming --force", code, errs, exitFailure)
	}
	if n := len(nodeStatus(t, sys).Deployments); n != 2 {
		t.Fatalf("refused undeploy left %d deployments, want 2", n)
	}
	publishMustRun(t, "undeploy", "--sysroot", sys, "--force", "1")

	code, _, errs = publishRun(t, "undeploy", "--sysroot", sys, "0")
	if code != exitFailure || !strings.Contains(errs, "last deployment") || !strings.Contains(errs, "--force") {
		t.Errorf("undeploy of the last deployment = exit %d (%q), want %d saying it is the last and naming --force", code, errs, exitFailure)
	}
	if n := len(nodeStatus(t, sys).Deployments); n != 1 {
		t.Fatalf("refused undeploy left %d deployments, want 1", n)
	}
	publishMustRun(t, "undeploy", "--sysroot", sys, "--force", "0")
	if n := len(nodeStatus(t, sys).Deployments); n != 0 {
		t.Errorf("undeploy --force of the last deployment left %d deployments, want 0", n)
	}
}
