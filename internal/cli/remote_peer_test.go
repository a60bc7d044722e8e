//go:build root && peer

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestRemoteWithTrustedKeyReadByOstree adds a remote as the README does
// (remote add --trusted-key, no GPG flag), deploys from it and reads the
// result with ostree: remote list -u, admin status (which verifies the
// deployment's commit as the remote asks) and a pull that must verify the
// ed25519 signature, or refuse when this ostree cannot.
func TestRemoteWithTrustedKeyReadByOstree(t *testing.T) {
	ostree := testutil.Ostree(t)
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	work := t.TempDir()
	src, sys, key := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable",
		"--tree", nodeTree(t, "1"), "--metadata", "version=1", "--sign-key", key+".key", "--timestamp", "1700000001"))
	publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
	srv := serveRepo(t, src)

	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	sysRepo := filepath.Join(sys, "ostree/repo")
	publishMustRun(t, "repo", "remote", "add", "--repo", sysRepo, "origin", srv.URL, "--trusted-key", key+".pub")
	cfg, err := os.ReadFile(filepath.Join(sysRepo, "config"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"gpg-verify=false\n", "sign-verify=true\n", "verification-ed25519-file=" + key + ".pub\n"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("config after remote add --trusted-key =\n%s\nwant a line %q", cfg, want)
		}
	}
	if out, err := exec.Command(ostree, "--repo="+sysRepo, "remote", "list", "-u").CombinedOutput(); err != nil ||
		!strings.Contains(string(out), "origin") || !strings.Contains(string(out), srv.URL) {
		t.Errorf("ostree remote list -u = %v\n%s\nwant origin %s", err, out, srv.URL)
	}
	publishMustRun(t, "repo", "pull", "--repo", sysRepo, "origin", "testos/stable")
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "origin:testos/stable")
	out, err := exec.Command(ostree, "admin", "status", "--sysroot="+sys).CombinedOutput()
	if err != nil || !strings.Contains(string(out), commit) || strings.Contains(string(out), "GPG") {
		t.Errorf("ostree admin status of a deployment from the remote = %v\n%s\nwant it to list %s without a GPG complaint", err, out, commit)
	}

	// A fresh ostree client with the same remote pulls only what it can
	// verify. Debian's ostree 2022.7 is built without libsodium (no
	// sign-ed25519 in ostree --version): it cannot check ed25519 and must
	// refuse the commit rather than fetch it unverified.
	client := filepath.Join(work, "client")
	if out, err := exec.Command(ostree, "--repo="+client, "init", "--mode=archive").CombinedOutput(); err != nil {
		t.Fatalf("ostree init: %v\n%s", err, out)
	}
	publishMustRun(t, "repo", "remote", "add", "--repo", client, "origin", srv.URL, "--trusted-key", key+".pub")
	version, _ := exec.Command(ostree, "--version").Output()
	out, err = exec.Command(ostree, "--repo="+client, "pull", "origin", "testos/stable").CombinedOutput()
	rev, _ := exec.Command(ostree, "--repo="+client, "rev-parse", "origin:testos/stable").Output()
	if strings.Contains(string(version), "sign-ed25519") {
		if err != nil || strings.TrimSpace(string(rev)) != commit {
			t.Errorf("ostree pull with ed25519 verification = %v\n%s\nwant %s pulled", err, out, commit)
		}
		return
	}
	t.Logf("this ostree cannot verify ed25519; its pull refused the commit: %s", out)
	if err == nil || strings.TrimSpace(string(rev)) == commit || strings.Contains(string(out), "GPG") {
		t.Errorf("ostree pull without an ed25519 engine = %v\n%s (ref %q)\nwant a refusal that is not about GPG, and no ref", err, out, rev)
	}
}
