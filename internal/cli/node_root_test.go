//go:build root

package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// nodeTree writes a small bootable OS tree of version v.
func nodeTree(t *testing.T, v string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"usr/lib/modules/5.10.0-fake/vmlinuz":       "fake kernel " + v + "\n",
		"usr/lib/modules/5.10.0-fake/initramfs.img": "fake initramfs\n",
		"usr/lib/os-release":                        "NAME=Test\nPRETTY_NAME=\"Test OS\"\nVERSION_ID=" + v + "\n",
		"usr/etc/hostname":                          "node\n",
		"usr/etc/motd":                              "welcome to " + v + "\n",
		"usr/bin/tool":                              "tool " + v + "\n",
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// nodeStatus runs status --json.
func nodeStatus(t *testing.T, sys string) statusJSON {
	t.Helper()
	var st statusJSON
	out := publishMustRun(t, "status", "--sysroot", sys, "--json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status --json printed %q: %v", out, err)
	}
	return st
}

// clearImmutable lets t.TempDir remove deployments (they carry the
// immutable attribute where the filesystem has one).
func clearImmutable(t *testing.T, sys string) {
	t.Cleanup(func() {
		dirs, _ := filepath.Glob(filepath.Join(sys, "ostree/deploy/*/deploy/*"))
		for _, d := range dirs {
			exec.Command("chattr", "-i", d).Run()
		}
	})
}

// TestNodeVerbs goes through the life of a node as an operator would:
// init, pull and deploy a signed commit, upgrade --check and upgrade from
// a served repository, kargs, pin, rollback, undeploy and cleanup,
// checking each command's output and the sysroot's state.
func TestNodeVerbs(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	work := t.TempDir()
	src, sys, key := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := func(v string) string {
		out := publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable", "--tree", nodeTree(t, v),
			"--metadata", "version="+v, "--sign-key", key+".key", "--timestamp", "170000000"+v)
		publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
		return strings.TrimSpace(out)
	}
	c1 := commit("1")

	srv := serveRepo(t, src)

	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	sysRepo := filepath.Join(sys, "ostree/repo")
	publishMustRun(t, "repo", "remote", "add", "--repo", sysRepo, "origin", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	publishMustRun(t, "repo", "pull", "--repo", sysRepo, "origin", "testos/stable")
	if code, _, errs := publishRun(t, "deploy", "--sysroot", sys, "--os", "testos", "origin:testos/nonexistent"); code != exitFailure || !strings.Contains(errs, "cannot deploy") {
		t.Errorf("deploy of an unknown ref = exit %d (%q), want %d, cannot deploy", code, errs, exitFailure)
	}
	publishMustRun(t, "deploy", "--sysroot", sys, "origin:testos/stable", "--karg", "root=LABEL=root", "--karg", "quiet")

	st := nodeStatus(t, sys)
	if len(st.Deployments) != 1 || st.Deployments[0].Checksum != c1 || st.Deployments[0].Refspec != "origin:testos/stable" ||
		st.Deployments[0].Version != "1" || !slices.Equal(st.Deployments[0].Kargs, []string{"root=LABEL=root", "quiet"}) {
		t.Fatalf("status after the first deploy = %+v, want one deployment of %s (origin:testos/stable, version 1, 2 kargs)", st.Deployments, c1)
	}
	// Shell completion offers the deployment indexes, and refs for deploy.
	if out := publishMustRun(t, "__complete", "pin", "--sysroot", sys, ""); !strings.Contains(out, "0\ttestos:origin:testos/stable "+c1[:12]) {
		t.Errorf("completion of pin INDEX = %q, want 0 and its deployment", out)
	}
	if out := publishMustRun(t, "__complete", "deploy", "--sysroot", sys, "origin:"); !strings.Contains(out, "origin:testos/stable\t") {
		t.Errorf("completion of deploy REV = %q, want origin:testos/stable", out)
	}
	etc := filepath.Join(st.Deployments[0].Path, "etc")
	if err := os.WriteFile(filepath.Join(etc, "local.conf"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	if code, out, _ := publishRun(t, "upgrade", "--sysroot", sys, "--check"); code != exitUnchanged || !strings.Contains(out, "No update available") {
		t.Errorf("upgrade --check with nothing new = exit %d (%q), want %d, No update available", code, out, exitUnchanged)
	}
	c2 := commit("2")
	var up upgradeJSON
	out := publishMustRun(t, "upgrade", "--sysroot", sys, "--check", "--json")
	if err := json.Unmarshal([]byte(out), &up); err != nil || !up.Available || up.Commit != c2 || up.Deployed != nil || up.Version != "2" {
		t.Errorf("upgrade --check --json = %s (%v), want update available to %s, version 2, nothing deployed", out, err, c2)
	}
	if got := nodeStatus(t, sys); len(got.Deployments) != 1 {
		t.Errorf("upgrade --check deployed something: %+v", got.Deployments)
	}
	out = publishMustRun(t, "upgrade", "--sysroot", sys, "--json")
	if err := json.Unmarshal([]byte(out), &up); err != nil || up.Deployed == nil || up.Deployed.Checksum != c2 || up.Deployed.Index != 0 {
		t.Fatalf("upgrade --json = %s (%v), want %s deployed at index 0", out, err, c2)
	}
	st = nodeStatus(t, sys)
	if len(st.Deployments) != 2 || st.Deployments[0].Checksum != c2 || st.Deployments[1].Checksum != c1 ||
		!st.Deployments[1].Rollback || !slices.Equal(st.Deployments[0].Kargs, []string{"root=LABEL=root", "quiet"}) {
		t.Fatalf("status after upgrade = %+v, want [%s (inherited kargs), %s (rollback)]", st.Deployments, c2, c1)
	}
	newEtc := filepath.Join(st.Deployments[0].Path, "etc")
	if b, err := os.ReadFile(filepath.Join(newEtc, "local.conf")); err != nil || string(b) != "mine\n" {
		t.Errorf("local /etc file after upgrade = %q, %v; want it carried over", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(newEtc, "motd")); err != nil || string(b) != "welcome to 2\n" {
		t.Errorf("default /etc file after upgrade = %q, %v; want the new default", b, err)
	}
	// Nothing is booted here, so the base is the default, which is c2 now.
	if code, out, _ := publishRun(t, "upgrade", "--sysroot", sys); code != 0 || !strings.Contains(out, "No update available") {
		t.Errorf("upgrade again = exit %d (%q), want 0, No update available", code, out)
	}

	if out := strings.TrimSpace(publishMustRun(t, "kargs", "--sysroot", sys, "--append", "console=ttyS0", "--delete", "quiet")); out != "root=LABEL=root console=ttyS0" {
		t.Errorf("kargs --append --delete printed %q, want %q", out, "root=LABEL=root console=ttyS0")
	}
	entries, _ := filepath.Glob(filepath.Join(sys, "boot/loader/entries/ostree-*.conf"))
	var found bool
	for _, e := range entries {
		b, _ := os.ReadFile(e)
		// ostree= keeps its place; appended arguments follow it, as libostree edits the line.
		found = found || regexp.MustCompile(`(?m)^options root=LABEL=root ostree=\S+ console=ttyS0$`).Match(b)
	}
	if !found {
		t.Errorf("no BLS entry under boot/loader carries the new kernel arguments (%v)", entries)
	}

	publishMustRun(t, "pin", "--sysroot", sys, "1")
	if st := nodeStatus(t, sys); !st.Deployments[1].Pinned {
		t.Errorf("pin 1: status = %+v, want deployment 1 pinned", st.Deployments)
	}
	publishMustRun(t, "rollback", "--sysroot", sys)
	if st := nodeStatus(t, sys); st.Deployments[0].Checksum != c1 || st.Deployments[1].Checksum != c2 {
		t.Errorf("rollback: status = %+v, want [%s, %s]", st.Deployments, c1, c2)
	}
	if code, _, errs := publishRun(t, "pin", "--sysroot", sys, "7"); code != exitFailure || !strings.Contains(errs, "cannot pin") {
		t.Errorf("pin 7 = exit %d (%q), want %d", code, errs, exitFailure)
	}
	if code, _, _ := publishRun(t, "pin", "--sysroot", sys, "x"); code != exitUsage {
		t.Errorf("pin x = exit %d, want %d", code, exitUsage)
	}
	gone := nodeStatus(t, sys).Deployments[1].Path
	publishMustRun(t, "undeploy", "--sysroot", sys, "1")
	if st := nodeStatus(t, sys); len(st.Deployments) != 1 || st.Deployments[0].Checksum != c1 {
		t.Errorf("undeploy 1: status = %+v, want only %s", st.Deployments, c1)
	}
	if !filepath.IsAbs(gone) {
		t.Errorf("status --json path %q, want an absolute path", gone)
	}
	if _, err := os.Stat(gone); !os.IsNotExist(err) {
		t.Errorf("undeployed %s still exists (stat: %v)", gone, err)
	}
	var cj cleanupJSON
	if err := json.Unmarshal([]byte(publishMustRun(t, "cleanup", "--sysroot", sys, "--json")), &cj); err != nil {
		t.Fatalf("cleanup --json: %v", err)
	}
	if code, out, errs := publishRun(t, "repo", "fsck", "--repo", sysRepo); code != 0 {
		t.Errorf("repo fsck of the sysroot repository = exit %d (%s%s), want 0", code, out, errs)
	}
	if code, _, errs := publishRun(t, "status", "--sysroot", work); code != exitFailure || !strings.Contains(errs, "cannot open sysroot") {
		t.Errorf("status of a directory that is no sysroot = exit %d (%q), want %d", code, errs, exitFailure)
	}
	// With two stateroots and none booted, deploy asks for --os.
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "other")
	if code, _, errs := publishRun(t, "deploy", "--sysroot", sys, "origin:testos/stable"); code != exitUsage || !strings.Contains(errs, "2 stateroots (other, testos)") || !strings.Contains(errs, "give --os NAME") {
		t.Errorf("deploy with two stateroots = exit %d (%q), want %d naming them and --os", code, errs, exitUsage)
	}
}
