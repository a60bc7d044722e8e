//go:build root

package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/sysext"
	"github.com/strata-os/strata/internal/testutil"
)

// sysextOSTree is nodeTree with an os-release that has an ID, which
// extensions match.
func sysextOSTree(t *testing.T, v string) string {
	t.Helper()
	dir := nodeTree(t, v)
	if err := os.WriteFile(filepath.Join(dir, "usr/lib/os-release"), []byte("ID=testos\nNAME=Test\nVERSION_ID="+v+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// sysextBuild builds a hello extension for testos VERSION_ID v.
func sysextBuild(t *testing.T, v string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/bin/hello"), []byte("#!/bin/sh\necho hello "+v+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "hello.raw")
	publishMustRun(t, "sysext", "build", dir, "--name", "hello", "--out", out, "--os-id", "testos", "--version-id", v)
	return out
}

func sysextListJSON(t *testing.T, sys string) []sysext.Status {
	t.Helper()
	var l []sysext.Status
	out := publishMustRun(t, "sysext", "list", "--sysroot", sys, "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("sysext list --json = %q: %v", out, err)
	}
	return l
}

// TestSysextFollowsUpgrades follows an extension published per OS version
// beside the repository: the image for the deployed version is fetched
// when the node starts following it; upgrading to v2 fetches v2's before
// staging, and each OS links its own at boot; v3 has none published, so
// the upgrade goes on, says so, and list says why it is not merged; v4's
// image is signed by another key, so the upgrade stops before staging,
// naming the extension. Images added by hand are checked before they get
// a place.
func TestSysextFollowsUpgrades(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	work := t.TempDir()
	src, sys, key, other := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key"), filepath.Join(work, "other")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	publishMustRun(t, "repo", "keygen", "--out", other)
	commit := func(v string) {
		publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable", "--tree", sysextOSTree(t, v),
			"--metadata", "version="+v, "--sign-key", key+".key", "--timestamp", "170000000"+v)
		publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
	}
	commit("1")
	for _, v := range []string{"1", "2"} {
		publishMustRun(t, "sysext", "publish", sysextBuild(t, v), "--repo", src, "--version-id", v, "--sign-key", key+".key")
	}
	srv := serveRepo(t, src)
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	publishMustRun(t, "repo", "pull", "--repo", filepath.Join(sys, "ostree/repo"), "--url", srv.URL, "--trusted-key", key+".pub", "testos/stable")
	remote := strings.TrimSpace(publishMustRun(t, "repo", "remote", "list", "--repo", filepath.Join(sys, "ostree/repo")))
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", strings.Fields(remote)[0]+":testos/stable")
	store := sysext.Store{Var: filepath.Join(sys, "ostree/deploy/testos/var")}

	publishMustRun(t, "sysext", "add", "--sysroot", sys, "--follow", "hello")
	if l := sysextListJSON(t, sys); len(l) != 1 || !l[0].Matches || l[0].Path != store.FollowedPath("hello", "1") {
		t.Fatalf("sysext list after add --follow = %+v, want hello matching with the image for 1", l)
	}

	// v2: the upgrade fetches v2's image before staging; both stay.
	commit("2")
	code, out, errs := publishRun(t, "upgrade", "--sysroot", sys)
	if code != exitOK || !strings.Contains(errs, "Extension hello: fetched the image for VERSION_ID 2") {
		t.Fatalf("upgrade to 2 = exit %d (%s%s), want it to fetch hello for 2", code, out, errs)
	}
	if vs, _ := store.Versions("hello"); strings.Join(vs, ",") != "1,2" {
		t.Errorf("versions held after the upgrade to 2 = %v, want [1 2]", vs)
	}
	// At boot, each OS links its own image.
	for _, v := range []string{"1", "2"} {
		root := t.TempDir()
		os.MkdirAll(filepath.Join(root, "usr/lib"), 0o755)
		os.WriteFile(filepath.Join(root, "usr/lib/os-release"), []byte("ID=testos\nVERSION_ID="+v+"\n"), 0o644)
		if err := os.Symlink(store.Var, filepath.Join(root, "var")); err != nil {
			t.Fatal(err)
		}
		publishMustRun(t, "sysext", "link", "--root", root)
		if got, err := os.Readlink(filepath.Join(root, "run/extensions/hello.raw")); err != nil || !strings.HasSuffix(got, "/"+v+"/hello.raw") {
			t.Errorf("OS %s boots with run/extensions/hello.raw -> %q, %v; want its own image", v, got, err)
		}
	}

	// v3: nothing published; the upgrade proceeds and says so.
	commit("3")
	code, out, errs = publishRun(t, "upgrade", "--sysroot", sys)
	if code != exitOK || !strings.Contains(errs, "Extension hello: none published for VERSION_ID 3; the new deployment boots without it") {
		t.Fatalf("upgrade to 3 = exit %d (%s%s), want success saying hello has none for 3", code, out, errs)
	}
	if l := sysextListJSON(t, sys); len(l) != 1 || l[0].Matches || !strings.Contains(l[0].Reason, "no image for VERSION_ID 3") {
		t.Errorf("sysext list on 3 = %+v, want hello not merged, saying why", l)
	}
	if st := publishMustRun(t, "status", "--sysroot", sys); !strings.Contains(st, "Extensions:\nhello (followed): not merged: no image for VERSION_ID 3") {
		t.Errorf("status on 3 = %s, want hello listed as not merged, saying why", st)
	}

	// v4: signed by another key; the upgrade stops before staging.
	commit("4")
	publishMustRun(t, "sysext", "publish", sysextBuild(t, "4"), "--repo", src, "--version-id", "4", "--sign-key", other+".key")
	before := nodeStatus(t, sys).Deployments
	code, out, errs = publishRun(t, "upgrade", "--sysroot", sys)
	if code == exitOK || !strings.Contains(errs, "extension hello") || !strings.Contains(errs, "untrusted") {
		t.Errorf("upgrade to 4 with a badly signed extension = exit %d (%s%s), want a failure naming the extension", code, out, errs)
	}
	after := nodeStatus(t, sys).Deployments
	if len(after) != len(before) || after[0].Checksum != before[0].Checksum {
		t.Errorf("deployments after the refused upgrade = %+v, want them unchanged (%+v)", after, before)
	}
	if vs, _ := store.Versions("hello"); strings.Contains(strings.Join(vs, ","), "4") {
		t.Errorf("versions held after the refused upgrade = %v, want no 4", vs)
	}

	// Images added by hand: a bad one is refused with nothing placed.
	bad := filepath.Join(t.TempDir(), "evil.raw")
	evil := t.TempDir()
	os.MkdirAll(filepath.Join(evil, "etc"), 0o755)
	os.WriteFile(filepath.Join(evil, "etc/x"), []byte("x"), 0o644)
	os.WriteFile(bad, []byte("not an image"), 0o644)
	code, _, errs = publishRun(t, "sysext", "add", "--sysroot", sys, bad)
	if code != exitInvalid || !strings.Contains(errs, "neither an EROFS nor a squashfs") {
		t.Errorf("sysext add of a non-image = exit %d (%s), want %d", code, errs, exitInvalid)
	}
	if _, err := os.Stat(filepath.Join(store.Var, "lib/extensions/evil.raw")); !os.IsNotExist(err) {
		t.Errorf("a refused image was placed: %v", err)
	}
	code, _, errs = publishRun(t, "sysext", "build", evil, "--name", "evil", "--out", bad, "--os-id", "testos", "--version-id", "3")
	if code != exitInvalid || !strings.Contains(errs, "/etc is outside /usr and /opt") {
		t.Errorf("sysext build of a tree with /etc = exit %d (%s), want %d", code, errs, exitInvalid)
	}
	publishMustRun(t, "sysext", "add", "--sysroot", sys, sysextBuild(t, "3"))
	publishMustRun(t, "sysext", "remove", "--sysroot", sys, "hello")
	if l := sysextListJSON(t, sys); len(l) != 0 {
		t.Errorf("sysext list after remove = %+v, want nothing", l)
	}
}
