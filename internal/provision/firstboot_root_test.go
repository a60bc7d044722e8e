//go:build root

package provision_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
	"github.com/strata-os/strata/internal/testutil"
)

func physRoot(t *testing.T, config string, mark bool) string {
	t.Helper()
	phys := t.TempDir()
	dir := filepath.Join(phys, provconfig.FirstBootDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(phys, provconfig.FirstBootConfig), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if mark {
		if err := os.WriteFile(filepath.Join(phys, provconfig.FirstBootMark), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return phys
}

func TestFirstBoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	good := `{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["` + key1 + `"]}]}}`
	bad := `{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core"}]},"storage":{"files":[{"path":"/etc/x","contents":{"source":"data:,x","verification":{"hash":"sha256-0000000000000000000000000000000000000000000000000000000000000000"}}}]}}`

	t.Run("applied once, then the mark is gone", func(t *testing.T) {
		t.Parallel()
		phys, deploy := physRoot(t, good, true), newRoot(t)
		ran, res, err := provision.FirstBoot(context.Background(), phys, deploy, provision.Options{})
		if !ran || err != nil || res.Users != 1 {
			t.Fatalf("FirstBoot = %v, %+v, %v; want ran, 1 user", ran, res, err)
		}
		if _, err := os.Stat(filepath.Join(phys, provconfig.FirstBootMark)); !os.IsNotExist(err) {
			t.Errorf("the mark after success: %v, want it removed", err)
		}
		if keys, err := os.ReadFile(filepath.Join(deploy, "var/home/core/.ssh/authorized_keys")); err != nil || !strings.Contains(string(keys), key1) {
			t.Errorf("authorized_keys = %q, %v", keys, err)
		}
		// The second boot finds no mark and does nothing.
		before := snapshot(t, deploy)
		ran, _, err = provision.FirstBoot(context.Background(), phys, deploy, provision.Options{})
		if ran || err != nil {
			t.Errorf("second FirstBoot = %v, %v; want not ran", ran, err)
		}
		if diff := diffTrees(before, snapshot(t, deploy)); len(diff) > 0 {
			t.Errorf("the second boot changed the tree:\n%s", strings.Join(diff, "\n"))
		}
	})
	t.Run("a failure keeps the mark and leaves a report", func(t *testing.T) {
		t.Parallel()
		phys, deploy := physRoot(t, bad, true), newRoot(t)
		before := snapshot(t, deploy)
		ran, _, err := provision.FirstBoot(context.Background(), phys, deploy, provision.Options{})
		if !ran || err == nil || !strings.Contains(err.Error(), "$.storage.files.0.contents.verification.hash") {
			t.Fatalf("FirstBoot = %v, %v; want ran and the hash error", ran, err)
		}
		if _, err := os.Stat(filepath.Join(phys, provconfig.FirstBootMark)); err != nil {
			t.Errorf("the mark after a failure: %v, want it kept", err)
		}
		rep, err := os.ReadFile(filepath.Join(phys, provconfig.FailureReport))
		if err != nil || !strings.Contains(string(rep), "verification.hash") {
			t.Errorf("failure report = %q, %v; want the error in it", rep, err)
		}
		if diff := diffTrees(before, snapshot(t, deploy)); len(diff) > 0 {
			t.Errorf("the failed provisioning changed the tree:\n%s", strings.Join(diff, "\n"))
		}
	})
	t.Run("no mark, nothing to do", func(t *testing.T) {
		t.Parallel()
		phys, deploy := physRoot(t, good, false), newRoot(t)
		if ran, _, err := provision.FirstBoot(context.Background(), phys, deploy, provision.Options{}); ran || err != nil {
			t.Errorf("FirstBoot without a mark = %v, %v; want not ran", ran, err)
		}
	})
}

// TestApplyConverges: applying a config again, as after a boot cut short, succeeds and gives
// the same tree.
func TestApplyConverges(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	root := newRoot(t)
	raw := []byte(`{"ignition":{"version":"3.3.0"},"passwd":{"groups":[{"name":"ops","gid":2000}],"users":[{"name":"core","uid":1000,"groups":["ops"],"sshAuthorizedKeys":["` + key1 + `"]}]},
 "storage":{"files":[{"path":"/etc/app.conf","mode":384,"contents":{"source":"data:,a=1"},"append":[{"source":"data:,%0Ab=2"}]}],
  "directories":[{"path":"/var/lib/app"}],"links":[{"path":"/etc/localtime","target":"../usr/share/zoneinfo/UTC"}]},
 "systemd":{"units":[{"name":"app.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}]}}`)
	cfg, _, err := provconfig.ParseJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Apply(context.Background(), root, cfg, provision.Options{}); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, root)
	if _, err := provision.Apply(context.Background(), root, cfg, provision.Options{}); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	second := snapshot(t, root)
	delete(first, "/etc/.ignition-result.json")
	delete(second, "/etc/.ignition-result.json")
	if diff := diffTrees(first, second); len(diff) > 0 {
		t.Errorf("the second Apply changed the tree:\n%s", strings.Join(diff, "\n"))
	}
}
