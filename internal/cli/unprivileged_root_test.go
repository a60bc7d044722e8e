//go:build root

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestUnprivilegedBareCommit: a user who commits files owned by others to
// a bare repository is told to use bare-user, as the user the command
// runs as, not root. The test binary is strata (TestMain), copied where
// the unprivileged user can run it.
func TestUnprivilegedBareCommit(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "setpriv", "util-linux")
	dir, err := os.MkdirTemp("", "strata-user-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "strata")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	if err := os.Mkdir(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "f"), []byte("root's\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	asNobody := func(args ...string) (string, error) {
		cmd := exec.Command("setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups", bin}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := asNobody("repo", "init", "--repo", "repo", "--mode", "bare"); err != nil {
		t.Fatalf("strata repo init as nobody: %v\n%s", err, out)
	}
	out, err := asNobody("repo", "commit", "--repo", "repo", "-b", "os/stable", "--tree", "tree")
	if err == nil || !strings.Contains(out, "commit to a bare-user repository (strata repo init --mode bare-user)") {
		t.Errorf("strata repo commit of root's files to a bare repository as nobody = %v, %q; want a refusal that suggests bare-user", err, out)
	}
	if out, err := asNobody("repo", "init", "--repo", "user", "--mode", "bare-user"); err != nil {
		t.Fatalf("strata repo init --mode bare-user as nobody: %v\n%s", err, out)
	}
	if out, err := asNobody("repo", "commit", "--repo", "user", "-b", "os/stable", "--tree", "tree"); err != nil {
		t.Errorf("strata repo commit to a bare-user repository as nobody: %v\n%s", err, out)
	}
}
