//go:build root && peer

package provision_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
	"github.com/strata-os/strata/internal/testutil"
)

// ignitionBinary is Debian's Ignition (package ignition, 2.14), which knows spec 3.0.0 to 3.3.0.
const ignitionBinary = "/usr/lib/dracut/modules.d/30ignition/ignition"

func requireIgnition(t testing.TB) {
	t.Helper()
	if _, err := os.Stat(ignitionBinary); err != nil {
		t.Fatalf("%s not found: install the Debian package ignition (scripts/deps)", ignitionBinary)
	}
	testutil.RequireTool(t, "useradd", "passwd")
}

// runIgnition applies a config to root with Ignition's fetch-offline and files stages on the
// file platform, keeping its cache and state files out of /run.
func runIgnition(t testing.TB, config []byte, root string) error {
	t.Helper()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "config.ign")
	if err := os.WriteFile(cfg, config, 0o600); err != nil {
		t.Fatal(err)
	}
	// Debian builds Ignition with SELinux relabeling, which runs setfiles over what it wrote.
	// strata does not label (the trees it provisions have no SELinux policy), so Ignition's
	// setfiles is a no-op here: a stand-in that reads the path list and succeeds.
	bin := filepath.Join(dir, "bin")
	os.Mkdir(bin, 0o755)
	if err := os.WriteFile(filepath.Join(bin, "setfiles"), []byte("#!/bin/sh\ncat >/dev/null\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []string{"fetch-offline", "files"} {
		cmd := exec.Command(ignitionBinary, "-platform", "file", "-stage", stage, "-root", root,
			"-config-cache", filepath.Join(dir, "cache.json"), "-neednet", filepath.Join(dir, "neednet"),
			"-state-file", filepath.Join(dir, "state"), "-log-to-stdout")
		cmd.Env = append(os.Environ(), "IGNITION_CONFIG_FILE="+cfg, "PATH="+bin+":"+os.Getenv("PATH"))
		if out, err := cmd.CombinedOutput(); err != nil {
			return &ignitionError{stage: stage, err: err, out: string(out)}
		}
	}
	return nil
}

type ignitionError struct {
	stage, out string
	err        error
}

func (e *ignitionError) Error() string {
	return "ignition stage " + e.stage + ": " + e.err.Error() + "\n" + lastLines(e.out, 15)
}

func lastLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}

func applyStrata(t testing.TB, config []byte, root string) (provision.Result, error) {
	t.Helper()
	cfg, rpt, err := provconfig.ParseJSON(config)
	if err != nil {
		t.Fatalf("ParseJSON: %v\n%s", err, rpt)
	}
	return provision.Apply(context.Background(), root, cfg, provision.Options{Digest: provconfig.Digest(config)})
}

// The deliberate differences between strata and Ignition, each applied to the snapshots
// before they are compared (docs/provisioning.md, "Differences from Ignition").
var differences = []struct {
	name  string
	apply func(ign, strata map[string]node)
}{
	{"shadow-utils leaves backups (passwd- ...) and a lock file; strata replaces the databases by rename", func(ign, _ map[string]node) {
		for _, f := range []string{"passwd-", "group-", "shadow-", "gshadow-", "subuid-", "subgid-", ".pwd.lock"} {
			delete(ign, "/etc/"+f)
		}
	}},
	{"SSH keys go to ~/.ssh/authorized_keys, which OpenSSH reads, not Ignition's ~/.ssh/authorized_keys.d/ignition", func(ign, _ map[string]node) {
		for p, n := range ign {
			if dir, ok := strings.CutSuffix(p, "/.ssh/authorized_keys.d/ignition"); ok {
				ign[dir+"/.ssh/authorized_keys"] = n
				delete(ign, p)
				delete(ign, dir+"/.ssh/authorized_keys.d")
			}
		}
	}},
	{"new homes are /var/home/NAME in passwd when /home is the OSTree layout's symlink to var/home (same directory on disk)", func(ign, _ map[string]node) {
		n := ign["/etc/passwd"]
		n.Data = strings.ReplaceAll(n.Data, ":/home/", ":/var/home/")
		ign["/etc/passwd"] = n
	}},
	{"enabled units also get their [Install] symlinks, so the first boot has them without preset-all", func(ign, strata map[string]node) {
		for p, n := range strata {
			if _, ok := ign[p]; ok {
				continue
			}
			if (strings.Contains(p, ".wants") || strings.Contains(p, ".requires")) && strings.HasPrefix(p, "/etc/systemd/system/") && (n.Kind == "dir" || n.Kind == "symlink") {
				delete(strata, p)
			}
			if p == "/etc/systemd/system/old-alias.service" && n.Kind == "symlink" {
				delete(strata, p)
			}
		}
	}},
	{"Ignition 2.14 writes the preset lines in Go map order (random); strata sorts them, as later Ignition does", func(ign, _ map[string]node) {
		if n, ok := ign["/etc/systemd/system-preset/20-ignition.preset"]; ok {
			lines := strings.Split(strings.TrimSuffix(n.Data, "\n"), "\n")
			slices.Sort(lines)
			n.Data = strings.Join(lines, "\n") + "\n"
			ign["/etc/systemd/system-preset/20-ignition.preset"] = n
		}
	}},
	{"the result file records the config digest too (compared by its fields, not bytes)", func(ign, strata map[string]node) {
		for _, m := range []map[string]node{ign, strata} {
			if n, ok := m["/etc/.ignition-result.json"]; ok {
				var r map[string]any
				json.Unmarshal([]byte(n.Data), &r)
				n.Data = "userConfigProvided=" + strings.TrimSpace(string(must(json.Marshal(r["userConfigProvided"]))))
				m["/etc/.ignition-result.json"] = n
			}
		}
	}},
}

func must(b []byte, _ error) []byte { return b }

// compare applies config with both and requires the same tree, up to the named differences.
func compare(t *testing.T, config []byte) {
	t.Helper()
	ignRoot, strataRoot := newRoot(t), newRoot(t)
	if err := runIgnition(t, config, ignRoot); err != nil {
		t.Fatalf("ignition: %v", err)
	}
	if _, err := applyStrata(t, config, strataRoot); err != nil {
		t.Fatalf("strata provision: %v", err)
	}
	ign, strata := snapshot(t, ignRoot), snapshot(t, strataRoot)
	for _, d := range differences {
		d.apply(ign, strata)
	}
	if diff := diffTrees(ign, strata); len(diff) > 0 {
		t.Errorf("trees differ (want = ignition, got = strata):\n%s", strings.Join(diff, "\n"))
	}
}

func TestDifferentialAcrossVersions(t *testing.T) {
	testutil.RequireRoot(t)
	requireIgnition(t)
	for _, v := range []string{"3.0.0", "3.1.0", "3.2.0", "3.3.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			compare(t, []byte(`{"ignition":{"version":"`+v+`"},
 "passwd":{"users":[{"name":"core","groups":["sudo","adm"],"sshAuthorizedKeys":["`+key1+`","`+key2+`"],"passwordHash":"$6$salt$hash"}]},
 "storage":{
  "files":[{"path":"/etc/hostname","overwrite":true,"contents":{"source":"data:,node1%0A"},"mode":420},
           {"path":"/var/lib/app/config.toml","mode":384,"contents":{"source":"data:;base64,a2V5ID0gInZhbHVlIgo="},"user":{"name":"core"},"group":{"name":"core"}},
           {"path":"/etc/motd","append":[{"source":"data:,provisioned%0A"}]}],
  "directories":[{"path":"/var/lib/app/cache","mode":488,"user":{"id":1000}}],
  "links":[{"path":"/etc/localtime","target":"/usr/share/zoneinfo/UTC"}]},
 "systemd":{"units":[{"name":"app.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"},
                     {"name":"bad.service","mask":true}]}}`))
		})
	}
}

func TestDifferentialUsersAndGroups(t *testing.T) {
	testutil.RequireRoot(t)
	requireIgnition(t)
	t.Parallel()
	compare(t, []byte(`{"ignition":{"version":"3.3.0"},
 "passwd":{
  "groups":[{"name":"ops","gid":2000},{"name":"builders"},{"name":"sysgrp","system":true}],
  "users":[
   {"name":"core","uid":1000,"groups":["ops","builders"],"sshAuthorizedKeys":["`+key1+`"],"gecos":"CoreOS Admin"},
   {"name":"alice","shell":"/bin/bash","homeDir":"/srv/alice"},
   {"name":"svc","system":true,"noCreateHome":true,"shell":"/usr/sbin/nologin"},
   {"name":"shared","noUserGroup":true},
   {"name":"member","primaryGroup":"ops"},
   {"name":"root","passwordHash":"$6$x$rootpw","sshAuthorizedKeys":["`+key2+`"]}]}}`))
}

func TestDifferentialFiles(t *testing.T) {
	testutil.RequireRoot(t)
	requireIgnition(t)
	t.Parallel()
	payload := []byte(strings.Repeat("strata provisioning payload\n", 64))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(payload)
	zw.Close()
	s256, s512 := sha256.Sum256(payload), sha512.Sum512(payload)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/plain":
			w.Write(payload)
		case "/gz":
			w.Write(gz.Bytes())
		case "/auth":
			if r.Header.Get("Authorization") != "Bearer t0ken" {
				http.Error(w, "no", http.StatusForbidden)
				return
			}
			w.Write(payload)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	compare(t, []byte(`{"ignition":{"version":"3.3.0"},
 "passwd":{"users":[{"name":"core"}]},
 "storage":{
  "files":[
   {"path":"/opt/plain","contents":{"source":"`+srv.URL+`/plain","verification":{"hash":"sha512-`+hex.EncodeToString(s512[:])+`"}}},
   {"path":"/opt/gz","mode":493,"contents":{"source":"`+srv.URL+`/gz","compression":"gzip","verification":{"hash":"sha256-`+hex.EncodeToString(s256[:])+`"}}},
   {"path":"/opt/auth","contents":{"source":"`+srv.URL+`/auth","httpHeaders":[{"name":"Authorization","value":"Bearer t0ken"}]}},
   {"path":"/opt/inline-gz","contents":{"compression":"gzip","source":"data:;base64,`+base64.StdEncoding.EncodeToString(gz.Bytes())+`"}},
   {"path":"/opt/empty"},
   {"path":"/opt/owned","user":{"id":4242},"group":{"id":4343},"mode":1517,"contents":{"source":"data:,x"}},
   {"path":"/etc/motd","overwrite":true,"contents":{"source":"data:,replaced%0A"},"append":[{"source":"data:,more%0A"},{"source":"data:,again%0A"}]},
   {"path":"/etc/hostname","user":{"name":"core"}},
   {"path":"/var/home/core/.config/app.conf","user":{"name":"core"},"group":{"name":"core"},"contents":{"source":"data:,a=1"}}],
  "directories":[{"path":"/etc/hostname.d","overwrite":true},{"path":"/srv/data/deep/dir","mode":448},{"path":"/var","mode":493}],
  "links":[
   {"path":"/opt/sym","target":"plain"},
   {"path":"/opt/hard","target":"/opt/plain","hard":true},
   {"path":"/home","target":"var/home"},
   {"path":"/usr/bin/tool","target":"/opt/gz","user":{"name":"core"}}]}}`))
}

func TestDifferentialUnits(t *testing.T) {
	testutil.RequireRoot(t)
	requireIgnition(t)
	t.Parallel()
	compare(t, []byte(`{"ignition":{"version":"3.3.0"},
 "systemd":{"units":[
  {"name":"app.service","enabled":true,"contents":"[Unit]\nDescription=App\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nRequiredBy=graphical.target\n",
   "dropins":[{"name":"10-env.conf","contents":"[Service]\nEnvironment=A=1\n"},{"name":"20-empty.conf"}]},
  {"name":"existing.service","enabled":true},
  {"name":"masked.service","mask":true},
  {"name":"dropin-only.service","dropins":[{"name":"override.conf","contents":"[Service]\nNice=5\n"}]}]}}`))
}

// The enablement symlinks strata adds are the ones systemctl enable would make.
func TestEnableLinks(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	root := newRoot(t)
	_, err := applyStrata(t, []byte(`{"ignition":{"version":"3.3.0"},"systemd":{"units":[
  {"name":"app.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\nRequiredBy=graphical.target\n"},
  {"name":"existing.service","enabled":true},
  {"name":"masked.service","mask":true}]}}`), root)
	if err != nil {
		t.Fatal(err)
	}
	for link, want := range map[string]string{
		"etc/systemd/system/multi-user.target.wants/app.service":      "/etc/systemd/system/app.service",
		"etc/systemd/system/graphical.target.requires/app.service":    "/etc/systemd/system/app.service",
		"etc/systemd/system/multi-user.target.wants/existing.service": "/usr/lib/systemd/system/existing.service",
		"etc/systemd/system/old-alias.service":                        "/usr/lib/systemd/system/existing.service",
		"etc/systemd/system/masked.service":                           "/dev/null",
	} {
		if got, err := os.Readlink(filepath.Join(root, link)); err != nil || got != want {
			t.Errorf("readlink %s = %q, %v; want %q", link, got, err, want)
		}
	}
	if preset, _ := os.ReadFile(filepath.Join(root, "etc/systemd/system-preset/20-ignition.preset")); string(preset) != "enable app.service\nenable existing.service\n" {
		t.Errorf("preset file = %q, want enable lines for app and existing", preset)
	}
}

// What strata config translate writes, ignition-validate accepts.
func TestIgnitionValidateAcceptsTranslation(t *testing.T) {
	validate := testutil.RequireTool(t, "ignition-validate", "ignition")
	t.Parallel()
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0", "1.4.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			yaml := "variant: fcos\nversion: " + v + `
passwd:
  users:
    - name: core
      groups: [sudo]
      ssh_authorized_keys: ["` + key1 + `"]
storage:
  directories:
    - path: /var/lib/app
      mode: 0750
  files:
    - path: /etc/hostname
      mode: 0644
      overwrite: true
      contents:
        inline: node1
    - path: /etc/big
      contents:
        inline: "` + strings.Repeat("repeated text ", 100) + `"
  links:
    - path: /etc/localtime
      target: ../usr/share/zoneinfo/UTC
systemd:
  units:
    - name: app.service
      enabled: true
      contents: |
        [Service]
        ExecStart=/bin/true
        [Install]
        WantedBy=multi-user.target
      dropins:
        - name: 10-x.conf
          contents: "[Service]\nNice=1\n"
`
			js, rpt, err := provconfig.Translate([]byte(yaml), provconfig.Options{})
			if err != nil {
				t.Fatalf("Translate: %v\n%s", err, rpt)
			}
			f := filepath.Join(t.TempDir(), "c.ign")
			os.WriteFile(f, js, 0o600)
			if out, err := exec.Command(validate, f).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
				t.Errorf("ignition-validate %s: %v\n%s\n%s", v, err, out, js)
			}
		})
	}
}
