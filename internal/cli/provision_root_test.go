//go:build root

package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

func TestProvisionCommand(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)
	os.WriteFile(filepath.Join(root, "etc/group"), []byte("root:x:0:\n"), 0o644)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /etc/hostname\n      contents:\n        inline: node1\nkernel_arguments:\n  should_exist: [console=ttyS0]\n"), 0o644)
	bad := filepath.Join(dir, "bad.ign")
	os.WriteFile(bad, []byte(`{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/a","contents":{"source":"data:,x"}},
 {"path":"/etc/b","contents":{"source":"data:,y","verification":{"hash":"sha256-0000000000000000000000000000000000000000000000000000000000000000"}}}]}}`), 0o644)

	_, stderr, code := cfgRun(t, "", "provision", "--root", root, "--config", bad)
	if code != 1 || !strings.Contains(stderr, "$.storage.files.1.contents.verification.hash: content has sha256-") {
		t.Errorf("strata provision bad.ign = %d, stderr %q; want 1 naming the hash", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/a")); !os.IsNotExist(err) {
		t.Errorf("after a failed provision, etc/a: %v; want it absent (fetch before apply)", err)
	}

	stdout, stderr, code := cfgRun(t, "", "provision", "--root", root, "--config", good)
	if code != 0 || !strings.Contains(stdout, "1 files") || !strings.Contains(stdout, `add ["console=ttyS0"]`) {
		t.Errorf("strata provision good.yaml = %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if data, err := os.ReadFile(filepath.Join(root, "etc/hostname")); err != nil || string(data) != "node1" {
		t.Errorf("etc/hostname = %q, %v; want node1", data, err)
	}
	if _, err := os.Stat(filepath.Join(root, "etc/.ignition-result.json")); err != nil {
		t.Errorf("result file: %v", err)
	}
}
