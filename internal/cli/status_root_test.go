//go:build root

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

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
