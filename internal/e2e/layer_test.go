//go:build root && peer && e2e

package e2e

import (
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
)

// layerDeb builds the step's package on the host: a file, and a conflict
// with nano, which v7 ships.
func layerDeb(t *testing.T) []byte {
	t.Helper()
	testutil.RequireTool(t, "dpkg-deb", "dpkg")
	root := filepath.Join(t.TempDir(), "pkg")
	for p, c := range map[string]string{
		"DEBIAN/control": "Package: e2e-layer\nVersion: 1.0\nArchitecture: all\nMaintainer: strata tests <tests@strata.invalid>\n" +
			"Conflicts: nano\nDescription: the end-to-end test's layered package\n",
		"usr/bin/e2e-layer": "#!/bin/sh\necho hello from a layered package\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "e2e-layer_1.0_all.deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", root, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build: %v: %s", err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// layerStatus is the part of `strata status --json` the step reads.
type layerStatus struct {
	Deployments []struct {
		Checksum string   `json:"commit"`
		Version  string   `json:"version"`
		Booted   bool     `json:"booted"`
		Base     string   `json:"base-checksum"`
		Local    []string `json:"requested-local-packages"`
	} `json:"deployments"`
	Blocked map[string]struct {
		Base     string   `json:"base"`
		Packages []string `json:"packages"`
		Reason   string   `json:"reason"`
	} `json:"updates_blocked"`
}

func (e *env) layerStatus(t *testing.T) layerStatus {
	t.Helper()
	var st layerStatus
	out := e.mustExec(t, "strata status --json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("strata status --json in the guest: %v\n%s", err, out)
	}
	return st
}

// layer installs a local .deb on the booted node (docs/layering.md), reboots into the derived
// deployment, upgrades to v6 with the package kept, and is refused v7, on which the package
// cannot be installed, before anything is staged.
func (e *env) layerStep(t *testing.T) {
	deb := base64.StdEncoding.EncodeToString(layerDeb(t))
	e.mustExec(t, "echo "+deb+" | base64 -d > /var/tmp/e2e-layer_1.0_all.deb")
	// The node's apt sources: none. The package has no dependency to fetch, and the guest has
	// no way to Debian's archive.
	e.mustExec(t, ": > /etc/apt/sources.list && rm -f /etc/apt/sources.list.d/*")

	start := time.Now()
	e.mustExec(t, "strata install /var/tmp/e2e-layer_1.0_all.deb")
	e.measure(t, "strata install of a local .deb in the guest (derive + deploy): %s", secs(time.Since(start)))
	b, took := e.reboot(t)
	if b.BootComplete != "success" {
		t.Fatalf("boot into the layered deployment %s: boot-complete %s", b.Deployment, b.BootComplete)
	}
	e.measure(t, "reboot into the layered deployment: %s", secs(took))
	check := func(when string) {
		if got := strings.TrimSpace(e.mustExec(t, "dpkg-query -W -f '${db:Status-Abbrev}${Version}' e2e-layer")); got != "ii 1.0" {
			t.Errorf("%s: dpkg-query e2e-layer = %q, want installed 1.0", when, got)
		}
		if got := strings.TrimSpace(e.mustExec(t, "e2e-layer")); got != "hello from a layered package" {
			t.Errorf("%s: e2e-layer printed %q", when, got)
		}
	}
	check("after the reboot")

	// A new base: the layer is derived again on it.
	e.compose(t, "6")
	start = time.Now()
	e.mustExec(t, "strata upgrade")
	e.measure(t, "upgrade to v6 with a layered package in the guest (pull + derive + deploy): %s", secs(time.Since(start)))
	if st := e.layerStatus(t); st.Deployments[0].Base != e.commits["6"] || len(st.Deployments[0].Local) != 1 {
		t.Fatalf("status after the upgrade to v6 = %+v, want a deployment derived from %s with the package", st.Deployments[0], e.commits["6"])
	}
	if b, _ = e.reboot(t); b.Version != "6" || b.BootComplete != "success" {
		t.Fatalf("after the upgrade: version %s, boot-complete %s; want 6, success", b.Version, b.BootComplete)
	}
	check("on v6")

	// v7 ships nano, which the package conflicts with: refused before staging.
	before := e.layerStatus(t)
	e.compose(t, "7")
	status, out := e.exec(t, "strata upgrade")
	if status == 0 || !strings.Contains(out, "e2e-layer") || !strings.Contains(out, "updates blocked") || !strings.Contains(out, "nano") {
		t.Errorf("strata upgrade to v7 = exit %d:\n%s\nwant a refusal naming e2e-layer and nano", status, tail(out, 20))
	}
	after := e.layerStatus(t)
	if len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Errorf("deployments after the refused upgrade = %+v, want them as before (%+v)", after.Deployments, before.Deployments)
	}
	if blk, ok := after.Blocked["strata-e2e"]; !ok || blk.Base != e.commits["7"] {
		t.Errorf("status updates_blocked = %+v, want v7 (%s) blocked", after.Blocked, e.commits["7"])
	}
}
