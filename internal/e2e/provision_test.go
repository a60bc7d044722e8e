//go:build root && peer && e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
)

// sshWait bounds the wait for the guest's sshd after the booted marker (it may start later,
// and makes its host keys on the first boot).
const sshWait = 3 * time.Minute

// provisioning is what the image step prepared for the first boot and the SSH logins.
type provisioning struct {
	key        string // the private key the host logs in with
	knownHosts string // the guest's host key, recorded at the first login
	port       int    // host port QEMU forwards to the guest's port 22
	digest     string // the config's digest as the image embedded it
}

// provisionConfig generates the SSH key and the agent configuration that
// testdata/provision.yaml reads as local files, picks the forwarded SSH port, and returns the
// config's path and its files directory.
func (e *env) provisionConfig(t *testing.T) (config, filesDir string) {
	t.Helper()
	testutil.RequireTool(t, "ssh-keygen", "openssh-client")
	testutil.RequireTool(t, "ssh", "openssh-client")
	dir := filepath.Join(e.work, "provision")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := &provisioning{key: filepath.Join(dir, "id_ed25519"), knownHosts: filepath.Join(dir, "known_hosts")}
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "strata-e2e", "-f", p.key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(p.key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	f := e.fleet
	agent := fmt.Sprintf("[agent.timing]\nsteady_interval_secs = 5\n[cincinnati]\nbase_url = \"http://10.0.2.2:%d/\"\n"+
		"[updates]\nstrategy = \"fleet_lock\"\n[updates.fleet_lock]\nbase_url = \"http://10.0.2.2:%d/\"\n", f.graphPort, f.lockPort)
	for name, data := range map[string][]byte{"e2e-ssh.pub": pub, "agent.toml": []byte(agent)} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// A free loopback port for QEMU's forward (QEMU binds it when it starts).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.port = ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	e.prov = p
	return filepath.Join(e.root, "internal", "e2e", "testdata", "provision.yaml"), dir
}

// ssh runs a command in the guest as user with the real OpenSSH client, through QEMU's port
// forward, and returns its exit status and standard output (standard error goes into the
// error, or is logged). The guest's host key is recorded at the first login and must stay the
// same afterwards (it is in /etc, which upgrades keep).
func (e *env) ssh(t *testing.T, user, command string) (int, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), execTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ssh", "-F", "none", "-i", e.prov.key, "-p", strconv.Itoa(e.prov.port),
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=20",
		"-o", "StrictHostKeyChecking=accept-new", "-o", "UserKnownHostsFile="+e.prov.knownHosts,
		"-o", "HostKeyAlias=strata-e2e-guest", "-o", "LogLevel=ERROR",
		user+"@127.0.0.1", command)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if stderr.Len() > 0 {
		t.Logf("ssh %s@guest %q: stderr: %s", user, command, strings.TrimSpace(stderr.String()))
	}
	if ee, ok := err.(*exec.ExitError); ok && ee.ExitCode() != 255 {
		return ee.ExitCode(), out.String(), nil // the command's status; 255 is ssh's own failure
	}
	if err != nil {
		return -1, out.String(), fmt.Errorf("ssh %s@guest %q: %w: %s", user, command, err, strings.TrimSpace(stderr.String()))
	}
	return 0, out.String(), nil
}

// mustSSH runs a command over SSH that must succeed.
func (e *env) mustSSH(t *testing.T, user, command string) string {
	t.Helper()
	status, out, err := e.ssh(t, user, command)
	if err != nil {
		t.Fatal(err)
	}
	if status != 0 {
		t.Fatalf("ssh %s@guest: %s: exit status %d\n%s", user, command, status, tail(out, 30))
	}
	return out
}

// waitSSH polls until the guest's sshd lets user in, and returns how long that took.
func (e *env) waitSSH(t *testing.T, user string) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		_, _, err := e.ssh(t, user, "true")
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > sshWait {
			t.Fatalf("no SSH login within %s: %v", sshWait, err)
		}
		time.Sleep(2 * time.Second)
	}
}

// provisioningStatus is the provisioning part of `strata status --json`.
type provisioningStatus struct {
	Status       string `json:"status"`
	Date         string `json:"date"`
	ConfigDigest string `json:"config_digest"`
	Source       string `json:"source"`
}

// checkProvisioned logs in over SSH as the provisioned user and checks what the first-boot
// config made: the user and its groups, its key, a file, a unit, and strata status's record.
func (e *env) checkProvisioned(t *testing.T) provisioningStatus {
	t.Helper()
	if got := strings.TrimSpace(e.mustSSH(t, "tester", "id -un; id -Gn")); !regexp.MustCompile(`^tester\n.*\bsudo\b`).MatchString(got) {
		t.Errorf("ssh tester@guest id = %q, want the user tester in the group sudo", got)
	}
	pub, _ := os.ReadFile(e.prov.key + ".pub")
	if got := e.mustSSH(t, "tester", "cat ~/.ssh/authorized_keys; stat -c '%a %U' ~/.ssh ~/.ssh/authorized_keys; echo $HOME"); got != string(pub)+"700 tester\n600 tester\n/var/home/tester\n" {
		t.Errorf("tester's key, modes and home = %q, want the test's key only, 700/600, /var/home/tester", got)
	}
	for _, c := range []struct{ cmd, want string }{
		{"cat /etc/strata-e2e/provisioned", "provisioned by the end-to-end test's config"},
		{"systemctl is-active strata-e2e-provisioned.service", "active"},
		{"sudo -n stat -c '%a %U' /etc/sudoers.d/tester", "440 root"},
		{`grep -c '^strategy = "fleet_lock"$' /etc/strata/agent.d/50-e2e.toml`, "1"},
		// storage.disks and storage.filesystems: the second disk, partitioned and formatted on
		// the first boot, mounted by the config's mount unit on every boot.
		{"findmnt -n -o SOURCE,FSTYPE /var/lib/containers", "/dev/vdb1 ext4"},
		{"lsblk -n -o PARTLABEL,LABEL /dev/vdb1", "containers ctr"},
	} {
		if got := strings.TrimSpace(e.mustSSH(t, "tester", c.cmd)); got != c.want {
			t.Errorf("ssh tester@guest %s = %q, want %q", c.cmd, got, c.want)
		}
	}
	var st struct {
		Provisioning *provisioningStatus `json:"provisioning"`
	}
	out := e.mustSSH(t, "tester", "sudo -n strata status --json")
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("strata status --json over SSH: %v\n%s", err, out)
	}
	p := st.Provisioning
	if p == nil || p.Status != "provisioned" || p.Source != "embedded" || p.ConfigDigest != e.prov.digest || p.Date == "" {
		t.Fatalf("strata status --json provisioning = %+v, want provisioned from the embedded config %s", p, e.prov.digest)
	}
	if text := e.mustSSH(t, "tester", "sudo -n strata status"); !strings.Contains(text, "Provisioned: "+p.Date+" with the embedded config "+e.prov.digest) {
		t.Errorf("strata status does not show when and with what the node was provisioned:\n%s", text)
	}
	return *p
}

// provisionedLines returns the console's "strata prepare-root: provisioned ... in N ms" lines'
// N, one per boot that applied a config.
func provisionedLines(console string) []int {
	data, _ := os.ReadFile(console)
	var out []int
	for _, m := range regexp.MustCompile(`strata prepare-root: provisioned \S+ \S+ in (\d+) ms`).FindAllSubmatch(data, -1) {
		n, _ := strconv.Atoi(string(m[1]))
		out = append(out, n)
	}
	return out
}
