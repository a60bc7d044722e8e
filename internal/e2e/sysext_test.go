//go:build root && peer && e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sysextStatus is the part of `strata sysext list --json` the test reads.
type sysextStatus struct {
	Name    string `json:"name"`
	Source  string `json:"source"`
	Matches bool   `json:"matches"`
	Reason  string `json:"reason"`
	Merged  *bool  `json:"merged"`
}

// sysextBuild builds the extension NAME for Debian VERSION_ID v on the host: one script,
// /usr/bin/NAME, that prints "NAME v". It returns the image.
func (e *env) sysextBuild(t *testing.T, name, v string) string {
	t.Helper()
	dir := filepath.Join(e.work, "sysext-"+name+"-"+v)
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr/bin", name), []byte("#!/bin/sh\necho "+name+" "+v+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(e.work, "sysext-out-"+v, name+".raw")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	e.strata(t, context.Background(), "sysext-build-"+name+"-"+v, "sysext", "build", dir, "--name", name, "--out", out,
		"--os-id", "debian", "--version-id", v)
	return out
}

// sysextList reads `strata sysext list --json` in the guest.
func (e *env) sysextList(t *testing.T) map[string]sysextStatus {
	t.Helper()
	out := e.mustExec(t, "strata sysext list --json")
	var l []sysextStatus
	if err := json.Unmarshal([]byte(lastJSONArray(out)), &l); err != nil {
		t.Fatalf("strata sysext list --json in the guest: %v\n%s", err, out)
	}
	m := map[string]sysextStatus{}
	for _, s := range l {
		m[s.Name] = s
	}
	return m
}

func lastJSONArray(out string) string {
	if i := strings.LastIndex(out, "\n["); i >= 0 {
		return out[i+1:]
	}
	return out
}

// sysextStep adds two system extensions built by `strata sysext build` on the booted OS: one
// added from a URL (e2e-tool, for this version only) and one followed (e2e-hello, published per
// OS version beside the repository). After a reboot systemd-sysext lists both and their
// binaries run. An upgrade to v4, for which e2e-hello is published, fetches it before staging,
// and after the reboot it is merged while e2e-tool (built for the old version) is not, with the
// reason in strata sysext list. An upgrade to v5, for which nothing is published, goes on and
// says so; v5 boots healthy without e2e-hello and list says why.
func (e *env) sysextStep(t *testing.T) {
	ctx := context.Background()
	// The agent of agent-v3 follows the release graph; this step upgrades by hand.
	e.mustExec(t, "systemctl stop strata-agent || true")
	v := bootedDeployment(t, e.status(t)).Version
	tool := e.sysextBuild(t, "e2e-tool", v)
	e.strata(t, ctx, "sysext-publish-tool", "sysext", "publish", tool, "--repo", e.repo, "--version-id", v, "--sign-key", e.secKey)
	e.strata(t, ctx, "sysext-publish-hello-"+v, "sysext", "publish", e.sysextBuild(t, "e2e-hello", v), "--repo", e.repo, "--version-id", v, "--sign-key", e.secKey)

	e.mustExec(t, "strata sysext add "+e.url+"extensions/e2e-tool/"+v+"/e2e-tool.raw")
	// add refreshes systemd-sysext: the added extension runs before any reboot.
	if out := strings.TrimSpace(e.mustExec(t, "e2e-tool")); out != "e2e-tool "+v {
		t.Errorf("right after strata sysext add, e2e-tool printed %q, want it merged by the refresh", out)
	}
	e.mustExec(t, "strata sysext add --follow e2e-hello")
	if l := e.sysextList(t); !l["e2e-tool"].Matches || !l["e2e-hello"].Matches {
		t.Fatalf("strata sysext list after adding = %+v, want both matching", l)
	}
	b, took := e.reboot(t)
	if b.Version != v || b.BootComplete != "success" {
		t.Fatalf("reboot with extensions: version %s, boot-complete %s; want %s, success", b.Version, b.BootComplete, v)
	}
	e.measure(t, "reboot with two extensions: %s", secs(took))
	st := e.mustExec(t, "systemd-sysext status; systemd-sysext list")
	for _, want := range []string{"e2e-tool", "e2e-hello"} {
		if !strings.Contains(st, want) {
			t.Errorf("systemd-sysext status after the reboot lacks %s:\n%s", want, st)
		}
	}
	if out := strings.TrimSpace(e.mustExec(t, "e2e-tool && e2e-hello")); out != "e2e-tool "+v+"\ne2e-hello "+v {
		t.Errorf("the extensions' binaries printed %q", out)
	}
	if l := e.sysextList(t); l["e2e-hello"].Merged == nil || !*l["e2e-hello"].Merged {
		t.Errorf("strata sysext list says e2e-hello is not merged: %+v", l["e2e-hello"])
	}

	// v4, with e2e-hello published for it: fetched before staging, merged after the reboot.
	e.compose(t, "4")
	e.strata(t, ctx, "sysext-publish-hello-4", "sysext", "publish", e.sysextBuild(t, "e2e-hello", "4"), "--repo", e.repo, "--version-id", "4", "--sign-key", e.secKey)
	if out := e.mustExec(t, "strata upgrade 2>&1"); !strings.Contains(out, "Extension e2e-hello: fetched the image for VERSION_ID 4") {
		t.Fatalf("strata upgrade to v4 did not fetch e2e-hello for 4:\n%s", out)
	}
	b, _ = e.reboot(t)
	if b.Version != "4" || b.BootComplete != "success" {
		t.Fatalf("upgrade to v4: version %s, boot-complete %s; want 4, success", b.Version, b.BootComplete)
	}
	if out := strings.TrimSpace(e.mustExec(t, "e2e-hello")); out != "e2e-hello 4" {
		t.Errorf("on v4, e2e-hello printed %q, want its v4 image's", out)
	}
	l := e.sysextList(t)
	if !l["e2e-hello"].Matches || l["e2e-tool"].Matches || !strings.Contains(l["e2e-tool"].Reason, "VERSION_ID "+v+", host is 4") {
		t.Errorf("strata sysext list on v4 = %+v, want e2e-hello matching and e2e-tool not, saying why", l)
	}
	if st, _ := e.exec(t, "command -v e2e-tool"); st == 0 {
		t.Errorf("on v4, e2e-tool (built for %s) is merged", v)
	}

	// v5, with nothing published: the upgrade goes on, the boot is healthy, list says why.
	e.compose(t, "5")
	if out := e.mustExec(t, "strata upgrade 2>&1"); !strings.Contains(out, "Extension e2e-hello: none published for VERSION_ID 5; the new deployment boots without it") {
		t.Fatalf("strata upgrade to v5 did not say e2e-hello has no image for 5:\n%s", out)
	}
	b, _ = e.reboot(t)
	if b.Version != "5" || b.BootComplete != "success" {
		t.Fatalf("upgrade to v5 without a matching extension: version %s, boot-complete %s; want 5, success", b.Version, b.BootComplete)
	}
	l = e.sysextList(t)
	if l["e2e-hello"].Matches || !strings.Contains(l["e2e-hello"].Reason, "no image for VERSION_ID 5") {
		t.Errorf("strata sysext list on v5 = %+v, want e2e-hello not merged for lack of an image for 5", l)
	}
	if st, _ := e.exec(t, "command -v e2e-hello"); st == 0 {
		t.Errorf("on v5, e2e-hello (no image for 5) is merged")
	}
	if out := e.mustExec(t, "strata status"); !strings.Contains(out, "e2e-hello (followed): not merged: no image for VERSION_ID 5") {
		t.Errorf("strata status on v5 does not say why e2e-hello is not merged:\n%s", out)
	}
	if out := e.mustExec(t, "systemctl is-failed strata-sysext.service systemd-sysext.service || true"); strings.Contains(out, "failed") {
		t.Errorf("extension units failed on v5: %s", out)
	}
}
