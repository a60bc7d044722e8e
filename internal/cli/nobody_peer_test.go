//go:build root && peer

package cli

import (
	"bufio"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestArchiveServedAsNobody publishes a signed commit into an archive
// repository, serves the repository as plain files from a web server
// running as nobody, and pulls it with ostree: every object must be
// world-readable, as ostree writes them, or the server answers 403.
func TestArchiveServedAsNobody(t *testing.T) {
	ostree := testutil.Ostree(t)
	top, helper := nobodyHelper(t)
	src, key, client := filepath.Join(top, "src"), filepath.Join(top, "key"), filepath.Join(top, "client")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "os/stable",
		"--tree", nodeTree(t, "1"), "--sign-key", key+".key", "--timestamp", "1700000001"))
	publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")

	kinds := map[string]bool{}
	filepath.WalkDir(filepath.Join(src, "objects"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		kinds[filepath.Ext(p)] = true
		if fi.Mode().Perm() != 0o644 {
			t.Errorf("%s has mode %#o, want 0644 (as ostree writes objects of an archive repository)", p, fi.Mode().Perm())
		}
		return nil
	})
	for _, k := range []string{".commit", ".commitmeta", ".dirtree", ".dirmeta", ".filez"} {
		if !kinds[k] {
			t.Errorf("no %s object in the repository: the mode check above missed that kind", k)
		}
	}

	url := serveAsNobody(t, helper, src)
	for _, args := range [][]string{
		{"init", "--mode=archive"},
		{"remote", "add", "--no-gpg-verify", "origin", url},
		{"pull", "origin", "os/stable"},
	} {
		if out, err := exec.Command(ostree, append([]string{"--repo=" + client}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ostree %s from a server running as nobody: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	out, err := exec.Command(ostree, "--repo="+client, "rev-parse", "origin:os/stable").Output()
	if err != nil || strings.TrimSpace(string(out)) != commit {
		t.Errorf("ostree rev-parse origin:os/stable after the pull = %q (%v), want %s", out, err, commit)
	}
}

// TestOstreeAdminStatusAsNobody reads a strata sysroot with ostree admin
// status as an unprivileged user, as one may on an ostree system: it shows
// each deployment's version, read from the commit object.
func TestOstreeAdminStatusAsNobody(t *testing.T) {
	ostree := testutil.Ostree(t)
	top, _ := nobodyHelper(t)
	sys, commit := nobodySysroot(t, top)
	out, err := asNobody(ostree, "admin", "status", "--sysroot="+sys).CombinedOutput()
	// The version comes from the commit object: 0600 metadata hid it.
	if err != nil || !strings.Contains(string(out), commit) || !strings.Contains(string(out), "Version: 1") {
		t.Errorf("ostree admin status as nobody = %v\n%s\nwant it to list %s with Version: 1", err, out, commit)
	}
}

// serveAsNobody serves dir over HTTP as plain files, from a helper
// process running as nobody (http.FileServer, as any static web server),
// and returns the base URL.
func serveAsNobody(t *testing.T, helper, dir string) string {
	t.Helper()
	cmd := asNobody(helper, "-test.run=^TestNobodyHelperProcess$")
	cmd.Env = append(cmd.Env, "STRATA_NOBODY_HELPER_SERVE="+dir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("file server as nobody printed no address: %v", err)
	}
	return "http://" + strings.TrimSpace(addr)
}
