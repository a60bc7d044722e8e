//go:build root && peer && e2e

package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

const ref = "strata/x86_64/e2e"

// rebootCmd reboots the guest the way a user would (through logind, over D-Bus).
const rebootCmd = "systemctl reboot"

// TestE2E is the whole flow of docs/boot.md on a real machine; see the package comment. Its
// steps run in order and each needs the ones before.
func TestE2E(t *testing.T) {
	e := newEnv(t)
	defer e.close(t)

	e.step(t, "compose-v1", e.composeV1)
	e.step(t, "image", e.image)
	e.step(t, "boot-v1", e.bootV1)
	e.step(t, "upgrade-v2", e.upgradeV2)
	e.step(t, "agent-v3", e.agentV3)
	e.step(t, "sysext", e.sysextStep)
	e.step(t, "layer", e.layerStep)
	e.step(t, "oci", e.ociStep)
	e.step(t, "power-cut", e.powerCut)
	e.stop(t, true)
}

// composeV1 makes the signed archive repository with v1 and serves it.
func (e *env) composeV1(t *testing.T) {
	ctx := context.Background()
	e.repo = filepath.Join(e.work, "repo")
	e.strata(t, ctx, "repo-init", "repo", "init", "--repo", e.repo, "--mode", "archive")
	prefix := filepath.Join(e.work, "e2e-key")
	e.strata(t, ctx, "keygen", "repo", "keygen", "--out", prefix)
	e.secKey, e.pubKey = prefix+".key", prefix+".pub"
	e.compose(t, "1")
	e.serve(t)
}

// image builds the disk that follows origin:REF at the served repository, with the first-boot
// config of testdata/provision.yaml: a user the host logs in as over SSH, and the update
// agent's configuration pointing at the release graph and the lock server on the host, which
// start here so that their ports are known.
func (e *env) image(t *testing.T) {
	e.disk = filepath.Join(e.work, "disk.img")
	e.vars = filepath.Join(e.work, "OVMF_VARS.fd")
	// The guest's /dev/vdb: the first-boot config gives it a partition for /var/lib/containers.
	e.data = filepath.Join(e.work, "data.img")
	if err := os.WriteFile(e.data, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(e.data, 256<<20); err != nil {
		t.Fatal(err)
	}
	e.fleet = e.startFleet(t)
	config, filesDir := e.provisionConfig(t)
	start := time.Now()
	out := e.strata(t, context.Background(), "image", "image", "--repo", e.repo, "--ref", ref, "--out", e.disk,
		"--remote-url", e.url, "--trusted-key", e.pubKey, "--size", "4G", "--provision", config, "--files-dir", filesDir, "--json")
	took := time.Since(start)
	var res struct {
		Commit          string `json:"commit"`
		Refspec         string `json:"refspec"`
		Deployment      string `json:"deployment"`
		Entry           string `json:"entry"`
		ProvisionDigest string `json:"provision_digest"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("strata image --json: %v", err)
	}
	if res.Commit != e.commits["1"] || res.Refspec != "origin:"+ref {
		t.Fatalf("image of commit %s following %s, want %s following origin:%s", res.Commit, res.Refspec, e.commits["1"], ref)
	}
	if !strings.HasPrefix(res.ProvisionDigest, "sha256-") {
		t.Fatalf("strata image --json provision_digest = %q, want sha256-HEX", res.ProvisionDigest)
	}
	e.prov.digest = res.ProvisionDigest
	var st syscall.Stat_t
	if err := syscall.Stat(e.disk, &st); err != nil {
		t.Fatal(err)
	}
	e.measure(t, "image build: %s; disk %s, %s allocated (sparse); ESP entry %s", secs(took), mib(st.Size), mib(st.Blocks*512), res.Entry)
}

// bootV1 boots the image for the first time.
func (e *env) bootV1(t *testing.T) {
	m := e.boot(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	b := e.waitBoot(t, ctx)
	if b.Version != "1" || b.Deployment != e.commits["1"]+".0" || b.BootComplete != "success" {
		t.Fatalf("first boot: version %s, deployment %s, boot-complete %s; want 1, %s.0, success",
			b.Version, b.Deployment, b.BootComplete, e.commits["1"])
	}
	e.measure(t, "first boot (%s): booted marker at %s after QEMU start; prepare-root %v ms", e.accel, secs(b.At), prepareRootTimes(m.ConsoleLog()))
	// What the first boot spent its time on, for the record.
	_, journal := e.exec(t, "journalctl -b -o short-monotonic --no-pager | grep -E 'automount|boot-efi|strata|Startup finished|Reached target'")
	t.Logf("first boot's journal, abridged:\n%s", journal)
	st := e.status(t)
	if len(st) != 1 || !st[0].Booted || st[0].Version != "1" {
		t.Fatalf("strata status in the guest = %+v, want one booted deployment of version 1", st)
	}
	// The first boot applied the embedded config before systemd started: log in over SSH.
	prov := provisionedLines(m.ConsoleLog())
	if len(prov) != 1 {
		t.Fatalf("the first boot's console has %d 'provisioned ... in N ms' lines, want 1", len(prov))
	}
	e.measure(t, "provisioning on the first boot (%s): %d ms in prepare-root; SSH login %s after the booted marker",
		e.accel, prov[0], secs(e.waitSSH(t, "tester")))
	e.provisioned = e.checkProvisioned(t)
	if ents := e.espEntries(t); len(ents) != 1 || strings.Contains(ents[b.Deployment], "+") {
		t.Errorf("ESP entries = %v, want one entry for %s without a boot counter", ents, b.Deployment)
	}
}

// upgradeV2 upgrades the guest to v2 over the network and reboots into it.
func (e *env) upgradeV2(t *testing.T) {
	e.mustExec(t, "echo local-change > /etc/e2e-local.conf && echo state > /var/e2e-data")
	e.compose(t, "2")

	start := time.Now()
	out := e.mustExec(t, "strata upgrade --json")
	e.measure(t, "upgrade to v2 in the guest (pull over HTTP + deploy): %s", secs(time.Since(start)))
	var up struct {
		Commit    string `json:"commit"`
		Available bool   `json:"update_available"`
	}
	if err := json.Unmarshal([]byte(lastJSON(out)), &up); err != nil {
		t.Fatalf("strata upgrade --json: %v\n%s", err, out)
	}
	if !up.Available || up.Commit != e.commits["2"] {
		t.Fatalf("strata upgrade = commit %s (available %v), want %s", up.Commit, up.Available, e.commits["2"])
	}
	if st := e.status(t); len(st) != 2 || st[0].Checksum != e.commits["2"] || !st[0].Pending || !st[1].Booted {
		t.Fatalf("status after the upgrade = %+v, want v2 pending, then v1 booted", st)
	}

	b, took := e.reboot(t)
	if b.Version != "2" || !strings.HasPrefix(b.Deployment, e.commits["2"]+".") || b.BootComplete != "success" {
		t.Fatalf("after the upgrade: version %s, deployment %s, boot-complete %s; want 2, %s.N, success",
			b.Version, b.Deployment, b.BootComplete, e.commits["2"])
	}
	e.measure(t, "reboot into v2: %s from the reboot command to the booted marker (%s from boot-start); prepare-root %v ms",
		secs(took), secs(b.At-b.Start), prepareRootTimes(e.m.ConsoleLog()))
	// The first boot's shutdown unmounted every file system: /var has a unit file (written by
	// prepare-root), so journald let go of /var/log/journal before /var was unmounted.
	for _, l := range strings.Split(e.m.ConsoleLog(), "\n") {
		if strings.Contains(l, "Failed unmounting") {
			t.Errorf("the first boot's shutdown: %s", strings.TrimSpace(l))
		}
	}
	// The journal persists from the very first boot on (the image makes /var/log/journal).
	if out := e.mustExec(t, "journalctl -b -1 --no-pager | grep -c 'Startup finished' || true"); strings.TrimSpace(out) == "0" {
		t.Errorf("the first boot's journal is gone after the reboot (journalctl -b -1 has no 'Startup finished')")
	}

	// The second boot did not provision again: one 'provisioned' line in the run's console (both
	// boots), the same record, and the user, its key and the host key (known_hosts) are still
	// good over SSH.
	if prov := provisionedLines(e.m.ConsoleLog()); len(prov) != 1 {
		t.Errorf("the console of the first and second boot has %d 'provisioned ... in N ms' lines, want 1 (the first boot's)", len(prov))
	}
	e.waitSSH(t, "tester")
	if p := e.checkProvisioned(t); p != e.provisioned {
		t.Errorf("provisioning record after the reboot = %+v, want the first boot's %+v", p, e.provisioned)
	}
	for _, c := range []struct{ name, cmd, want string }{
		{"local /etc change", "cat /etc/e2e-local.conf", "local-change"},
		{"file in /var", "cat /var/e2e-data", "state"},
		{"changed file", "cat /usr/share/strata-e2e/version", "2"},
		{"added package", "dpkg-query -W -f '${Package}' less", "less"},
	} {
		if got := strings.TrimSpace(e.mustExec(t, c.cmd)); got != c.want {
			t.Errorf("%s: %s = %q, want %q", c.name, c.cmd, got, c.want)
		}
	}
	if status, out := e.exec(t, "touch /usr/e2e-write"); status == 0 || !strings.Contains(out, "Read-only file system") {
		t.Errorf("touch /usr/e2e-write = status %d, %q; want a read-only file system error", status, out)
	}
	st := e.status(t)
	if len(st) != 2 || !st[0].Booted || st[0].Version != "2" || !st[1].Rollback || st[1].Version != "1" {
		t.Errorf("status on v2 = %+v, want v2 booted, v1 rollback", st)
	}
	if ents := e.espEntries(t); strings.Contains(ents[b.Deployment], "+") || ents[b.Deployment] == "" {
		t.Errorf("ESP entries = %v, want %s blessed (no boot counter)", ents, b.Deployment)
	}
}

// bootedDeployment is the deployment status marks booted.
func bootedDeployment(t *testing.T, st []deployment) deployment {
	t.Helper()
	for _, d := range st {
		if d.Booted {
			return d
		}
	}
	t.Fatalf("status %+v has no booted deployment", st)
	return deployment{}
}

// reboot reboots the guest and waits for the next boot to be over.
func (e *env) reboot(t *testing.T) (bootInfo, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	start := time.Now()
	if _, err := e.m.Send(ctx, rebootCmd); err != nil {
		t.Fatal(err)
	}
	b := e.waitBoot(t, ctx)
	took := time.Since(start)
	if took > slowReboot {
		// Where the time went (the journal persists): the first and last entries of each boot
		// show the gap from the old boot's end to the new kernel's start (firmware and loader),
		// and the end of the old boot its shutdown.
		_, out := e.exec(t, "journalctl --list-boots --no-pager | tail -n 2; journalctl -b -1 -o short-monotonic --no-pager | tail -n 40")
		t.Logf("slow reboot (%s): the last two boots, then the last journal lines of the previous one:\n%s", secs(took), out)
	}
	return b, took
}

// slowReboot is the reboot time past which reboot logs the end of the previous boot's journal.
const slowReboot = 90 * time.Second

// espEntries maps each deployment (CHECKSUM.SERIAL) to its ESP entry's file name, from the
// entries' "# strata-deployment OS CHECKSUM.SERIAL" first lines.
func (e *env) espEntries(t *testing.T) map[string]string {
	t.Helper()
	out := e.mustExec(t, `for f in /boot/efi/loader/entries/*.conf; do echo "${f##*/} $(head -n1 "$f")"; done`)
	ents := map[string]string{}
	re := regexp.MustCompile(`^(\S+\.conf) # strata-deployment \S+ (\S+)$`)
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if m := re.FindStringSubmatch(strings.TrimSpace(l)); m != nil {
			ents[m[2]] = m[1]
		} else {
			t.Errorf("ESP entry line %q: want NAME.conf # strata-deployment OS CHECKSUM.SERIAL", l)
		}
	}
	return ents
}

// lastJSON returns the text from the last line that starts a JSON object (progress lines may
// come before it).
func lastJSON(out string) string {
	if i := strings.LastIndex(out, "\n{"); i >= 0 {
		return out[i+1:]
	}
	return out
}
