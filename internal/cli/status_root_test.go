//go:build root

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/testutil"
)

// TestStatusEscapesOrigin: a deployment's origin (written by another
// tool, or edited) holds terminal escape sequences, a line break and a
// bidirectional override in its refspec. status prints them escaped: a
// terminal never receives them raw.
func TestStatusEscapesOrigin(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	sys := filepath.Join(t.TempDir(), "sys")
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	publishMustRun(t, "repo", "commit", "--repo", filepath.Join(sys, "ostree/repo"), "--branch", "testos/stable",
		"--tree", nodeTree(t, "1"), "--metadata", "version=1", "--timestamp", "1700000001")
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "testos/stable")
	origins, err := filepath.Glob(filepath.Join(sys, "ostree/deploy/testos/deploy/*.origin"))
	if err != nil || len(origins) != 1 {
		t.Fatalf("origin files = %v, %v; want one", origins, err)
	}
	hostile := "[origin]\nrefspec=testos/stable\x1b]0;owned\x07\\n    Version:   9.9\u202e\n"
	if err := os.WriteFile(origins[0], []byte(hostile), 0o644); err != nil {
		t.Fatal(err)
	}
	out := publishMustRun(t, "status", "--sysroot", sys)
	if strings.ContainsAny(out, "\x1b\x07\u202e") {
		t.Errorf("status printed raw control characters:\n%q", out)
	}
	if strings.Count(out, "\n    Version:") != 1 {
		t.Errorf("status printed a forged Version line:\n%s", out)
	}
	if want := `testos:testos/stable\x1b]0;owned\a\n    Version:   9.9\u202e`; !strings.Contains(out, want) {
		t.Errorf("status printed\n%s\nwant the refspec escaped as %s", out, want)
	}
}

// TestStatusProvisioning: status shows the node's first-boot provisioning state from the
// physical root: pending while the mark is there, then when and with which config it was
// provisioned (text and --json); a node built without a config shows nothing.
func TestStatusProvisioning(t *testing.T) {
	testutil.RequireRoot(t)
	sys := filepath.Join(t.TempDir(), "sys")
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	if out := publishMustRun(t, "status", "--sysroot", sys); strings.Contains(out, "Provision") {
		t.Errorf("status of a node without provisioning:\n%s\nwant no provisioning line", out)
	}
	dir := filepath.Join(sys, provconfig.FirstBootDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, provconfig.FirstBootMark), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if out := publishMustRun(t, "status", "--sysroot", sys); !strings.Contains(out, "Provisioning: pending") {
		t.Errorf("status with the first-boot mark:\n%s\nwant Provisioning: pending", out)
	}
	digest := "sha256-" + strings.Repeat("ab", 32)
	rec := `{"date":"2026-12-07T04:00:00Z","config_digest":"` + digest + `","source":"embedded","kernel_arguments":{}}`
	if err := os.WriteFile(filepath.Join(sys, provconfig.FirstBootRecord), []byte(rec), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(sys, provconfig.FirstBootMark)); err != nil {
		t.Fatal(err)
	}
	if out, want := publishMustRun(t, "status", "--sysroot", sys), "Provisioned: 2026-12-07T04:00:00Z with the embedded config "+digest; !strings.Contains(out, want) {
		t.Errorf("status after provisioning:\n%s\nwant %s", out, want)
	}
	var st statusJSON
	if err := json.Unmarshal([]byte(publishMustRun(t, "status", "--sysroot", sys, "--json")), &st); err != nil {
		t.Fatal(err)
	}
	want := &provisioningJSON{Status: "provisioned", Date: "2026-12-07T04:00:00Z", ConfigDigest: digest, Source: "embedded"}
	if diff := cmp.Diff(want, st.Provisioning); diff != "" {
		t.Errorf("status --json provisioning (-want +got):\n%s", diff)
	}
}
