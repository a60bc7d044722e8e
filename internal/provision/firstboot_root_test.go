//go:build root

package provision_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
	"github.com/strata-os/strata/internal/testutil"
)

func physRoot(t *testing.T, config string, mark bool) string {
	t.Helper()
	phys := t.TempDir()
	dir := filepath.Join(phys, provconfig.FirstBootDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(phys, provconfig.FirstBootConfig), []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	if mark {
		if err := os.WriteFile(filepath.Join(phys, provconfig.FirstBootMark), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return phys
}

func TestFirstBoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	good := `{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core","sshAuthorizedKeys":["` + key1 + `"]}]}}`
	bad := `{"ignition":{"version":"3.3.0"},"passwd":{"users":[{"name":"core"}]},"storage":{"files":[{"path":"/etc/x","contents":{"source":"data:,x","verification":{"hash":"sha256-0000000000000000000000000000000000000000000000000000000000000000"}}}]}}`

	t.Run("applied once, then the mark is gone", func(t *testing.T) {
		t.Parallel()
		phys, deploy := physRoot(t, good, true), newRoot(t)
		ran, rec, res, err := provision.FirstBoot(context.Background(), phys, deploy, nil, provision.Options{})
		if !ran || err != nil || res.Users != 1 {
			t.Fatalf("FirstBoot = %v, %+v, %v; want ran, 1 user", ran, res, err)
		}
		if want := provconfig.Digest([]byte(good)); rec.Source != "embedded" || rec.ConfigDigest != want {
			t.Errorf("FirstBoot record = %+v, want source embedded, digest %s", rec, want)
		}
		st, err := provision.ReadState(phys)
		if err != nil || st.Status != provision.StatusProvisioned || st.Record == nil || st.Record.ConfigDigest != rec.ConfigDigest || st.Record.Date == "" {
			t.Errorf("ReadState after success = %+v (record %+v), %v; want provisioned with the record", st, st.Record, err)
		}
		if _, err := os.Stat(filepath.Join(phys, provconfig.FirstBootMark)); !os.IsNotExist(err) {
			t.Errorf("the mark after success: %v, want it removed", err)
		}
		if keys, err := os.ReadFile(filepath.Join(deploy, "var/home/core/.ssh/authorized_keys")); err != nil || !strings.Contains(string(keys), key1) {
			t.Errorf("authorized_keys = %q, %v", keys, err)
		}
		// The second boot finds no mark and does nothing.
		before := snapshot(t, deploy)
		ran, _, _, err = provision.FirstBoot(context.Background(), phys, deploy, nil, provision.Options{})
		if ran || err != nil {
			t.Errorf("second FirstBoot = %v, %v; want not ran", ran, err)
		}
		if diff := diffTrees(before, snapshot(t, deploy)); len(diff) > 0 {
			t.Errorf("the second boot changed the tree:\n%s", strings.Join(diff, "\n"))
		}
	})
	t.Run("a failure keeps the mark and leaves a report", func(t *testing.T) {
		t.Parallel()
		phys, deploy := physRoot(t, bad, true), newRoot(t)
		before := snapshot(t, deploy)
		if st, err := provision.ReadState(phys); err != nil || st.Status != provision.StatusPending {
			t.Errorf("ReadState before the first boot = %+v, %v; want pending", st, err)
		}
		ran, _, _, err := provision.FirstBoot(context.Background(), phys, deploy, nil, provision.Options{})
		if !ran || err == nil || !strings.Contains(err.Error(), "$.storage.files.0.contents.verification.hash") {
			t.Fatalf("FirstBoot = %v, %v; want ran and the hash error", ran, err)
		}
		if _, err := os.Stat(filepath.Join(phys, provconfig.FirstBootMark)); err != nil {
			t.Errorf("the mark after a failure: %v, want it kept", err)
		}
		rep, err := os.ReadFile(filepath.Join(phys, provconfig.FailureReport))
		if err != nil || !strings.Contains(string(rep), "verification.hash") {
			t.Errorf("failure report = %q, %v; want the error in it", rep, err)
		}
		if diff := diffTrees(before, snapshot(t, deploy)); len(diff) > 0 {
			t.Errorf("the failed provisioning changed the tree:\n%s", strings.Join(diff, "\n"))
		}
		if st, err := provision.ReadState(phys); err != nil || st.Status != provision.StatusFailed || st.Failure == nil || !strings.Contains(st.Failure.Error, "verification.hash") {
			t.Errorf("ReadState after a failure = %+v, %v; want failed with the error", st, err)
		}
	})
	t.Run("kernel arguments are left pending for the deployment", func(t *testing.T) {
		t.Parallel()
		cfg := `{"ignition":{"version":"3.3.0"},"kernelArguments":{"shouldExist":["console=ttyS0"],"shouldNotExist":["quiet"]}}`
		phys, deploy := physRoot(t, cfg, true), newRoot(t)
		if _, found, err := provision.PendingKargs(phys); found || err != nil {
			t.Fatalf("PendingKargs before the first boot = %v, %v; want none", found, err)
		}
		if ran, _, _, err := provision.FirstBoot(context.Background(), phys, deploy, nil, provision.Options{}); !ran || err != nil {
			t.Fatalf("FirstBoot = %v, %v", ran, err)
		}
		ka, found, err := provision.PendingKargs(phys)
		if !found || err != nil || strings.Join(ka.ShouldExist, " ") != "console=ttyS0" || strings.Join(ka.ShouldNotExist, " ") != "quiet" {
			t.Errorf("PendingKargs = %+v, %v, %v; want console=ttyS0 to exist, quiet not", ka, found, err)
		}
		if err := provision.ClearPendingKargs(phys); err != nil {
			t.Fatal(err)
		}
		if _, found, err := provision.PendingKargs(phys); found || err != nil {
			t.Errorf("PendingKargs after ClearPendingKargs = %v, %v; want none", found, err)
		}
	})
	t.Run("no mark, nothing to do", func(t *testing.T) {
		t.Parallel()
		phys, deploy := physRoot(t, good, false), newRoot(t)
		if ran, _, _, err := provision.FirstBoot(context.Background(), phys, deploy, nil, provision.Options{}); ran || err != nil {
			t.Errorf("FirstBoot without a mark = %v, %v; want not ran", ran, err)
		}
	})
}

// TestApplyConverges: applying a config again, as after a boot cut short, succeeds and gives
// the same tree.
func TestApplyConverges(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	root := newRoot(t)
	raw := []byte(`{"ignition":{"version":"3.3.0"},"passwd":{"groups":[{"name":"ops","gid":2000}],"users":[{"name":"core","uid":1000,"groups":["ops"],"sshAuthorizedKeys":["` + key1 + `"]}]},
 "storage":{"files":[{"path":"/etc/app.conf","mode":384,"contents":{"source":"data:,a=1"},"append":[{"source":"data:,%0Ab=2"}]}],
  "directories":[{"path":"/var/lib/app"}],"links":[{"path":"/etc/localtime","target":"../usr/share/zoneinfo/UTC"}]},
 "systemd":{"units":[{"name":"app.service","enabled":true,"contents":"[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n"}]}}`)
	cfg, _, err := provconfig.ParseJSON(raw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := provision.Apply(context.Background(), root, cfg, provision.Options{}); err != nil {
		t.Fatal(err)
	}
	first := snapshot(t, root)
	if _, err := provision.Apply(context.Background(), root, cfg, provision.Options{}); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	second := snapshot(t, root)
	delete(first, "/etc/.ignition-result.json")
	delete(second, "/etc/.ignition-result.json")
	if diff := diffTrees(first, second); len(diff) > 0 {
		t.Errorf("the second Apply changed the tree:\n%s", strings.Join(diff, "\n"))
	}
}

// TestFirstBootSources: the first source that has a config wins, in prepare-root's order
// (fw_cfg, embedded, URL); the network is brought up only when the URL is needed; with no
// config anywhere the node counts as provisioned with nothing applied.
func TestFirstBootSources(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	cfgFor := func(name string) string {
		return `{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/from","contents":{"source":"data:,` + name + `"}}]}}`
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/node.ign" {
			http.NotFound(w, r)
			return
		}
		io.WriteString(w, cfgFor("url"))
	}))
	t.Cleanup(srv.Close)
	fwcfg := t.TempDir()
	p := filepath.Join(fwcfg, provconfig.FwCfgConfig)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(cfgFor("fw_cfg")), 0o400); err != nil {
		t.Fatal(err)
	}
	cmdline := "root=LABEL=root " + provconfig.ConfigURLArg + "=" + srv.URL + "/node.ign quiet"
	for _, tc := range []struct {
		name      string
		fwcfg     bool
		embedded  bool
		cmdline   string
		want      string // the source, and the content of /etc/from
		wantNet   bool
		wantError string
	}{
		{name: "fw_cfg first", fwcfg: true, embedded: true, cmdline: cmdline, want: "fw_cfg"},
		{name: "embedded before the URL", embedded: true, cmdline: cmdline, want: "embedded"},
		{name: "URL last, network brought up", cmdline: cmdline, want: "url", wantNet: true},
		{name: "nothing anywhere", cmdline: "root=LABEL=root"},
		{name: "URL not found", cmdline: provconfig.ConfigURLArg + "=" + srv.URL + "/missing.ign", wantNet: true, wantError: "404"},
		{name: "URL not http", cmdline: provconfig.ConfigURLArg + "=tftp://10.0.2.2/x.ign", wantError: "want an http or https URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			phys, deploy := physRoot(t, cfgFor("embedded"), true), newRoot(t)
			if !tc.embedded {
				os.Remove(filepath.Join(phys, provconfig.FirstBootConfig))
			}
			sysfs := t.TempDir()
			if tc.fwcfg {
				sysfs = fwcfg
			}
			netUp := false
			sources := []provision.Source{provision.FwCfg{Sysfs: sysfs}, provision.Embedded{PhysRoot: phys},
				provision.URL{Cmdline: tc.cmdline, Network: func(context.Context) error { netUp = true; return nil }}}
			ran, rec, _, err := provision.FirstBoot(context.Background(), phys, deploy, sources, provision.Options{})
			if netUp != tc.wantNet {
				t.Errorf("network brought up = %v, want %v", netUp, tc.wantNet)
			}
			if tc.wantError != "" {
				if !ran || err == nil || !strings.Contains(err.Error(), tc.wantError) {
					t.Fatalf("FirstBoot = %v, %v; want an error with %q", ran, err, tc.wantError)
				}
				if _, err := os.Stat(filepath.Join(phys, provconfig.FirstBootMark)); err != nil {
					t.Errorf("the mark after a failure: %v, want it kept", err)
				}
				return
			}
			if !ran || err != nil || rec.Source != tc.want {
				t.Fatalf("FirstBoot = %v, %+v, %v; want the %q config applied", ran, rec, err, tc.want)
			}
			got, err := os.ReadFile(filepath.Join(deploy, "etc/from"))
			if tc.want == "" {
				if !os.IsNotExist(err) {
					t.Errorf("/etc/from = %q, %v; want nothing applied", got, err)
				}
			} else if string(got) != tc.want {
				t.Errorf("/etc/from = %q, %v; want %q", got, err, tc.want)
			}
			if st, err := provision.ReadState(phys); err != nil || st.Status != provision.StatusProvisioned || st.Record.Source != tc.want {
				t.Errorf("ReadState = %+v, %v; want provisioned from %q", st, err, tc.want)
			}
		})
	}
}

// TestFirstBootNetworkHostname gives the node the host name its network configuration named
// (DHCP's option 12 or ip='s HOSTNAME) when neither the config nor the image set /etc/hostname,
// and leaves a name that is there, or one that is not a host name, alone.
func TestFirstBootNetworkHostname(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	plain := `{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/issue.d/node","contents":{"source":"data:,hi"}}]}}`
	named := `{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"/etc/hostname","overwrite":true,"mode":420,"contents":{"source":"data:,from-config%0A"}}]}}`
	for _, tc := range []struct {
		name, config, network, image string
		want                         string // /etc/hostname afterwards, "" for absent
		wantRecord                   string
	}{
		{name: "the network's name when none is set", config: plain, network: "node-7", want: "node-7\n", wantRecord: "node-7"},
		{name: "the config's name wins", config: named, network: "node-7", want: "from-config\n"},
		{name: "the image's name wins", config: plain, network: "node-7", image: "from-image\n", want: "from-image\n"},
		{name: "no name from the network", config: plain},
		{name: "not a host name", config: plain, network: "evil;name\n"},
		{name: "too long", config: plain, network: strings.Repeat("a", 65)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, tc.config) }))
			t.Cleanup(srv.Close)
			phys, deploy := physRoot(t, "", true), newRoot(t)
			os.Remove(filepath.Join(phys, provconfig.FirstBootConfig))
			// The fixture's /etc/hostname stands for an image's; most cases want a tree without one.
			if tc.image == "" {
				if err := os.Remove(filepath.Join(deploy, "etc/hostname")); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(filepath.Join(deploy, "etc/hostname"), []byte(tc.image), 0o644); err != nil {
				t.Fatal(err)
			}
			netName := ""
			sources := []provision.Source{provision.URL{Cmdline: provconfig.ConfigURLArg + "=" + srv.URL + "/node.ign",
				Network: func(context.Context) error { netName = tc.network; return nil }}}
			opts := provision.Options{NetworkHostname: func() string { return netName }}
			ran, rec, _, err := provision.FirstBoot(context.Background(), phys, deploy, sources, opts)
			if !ran || err != nil || rec.Hostname != tc.wantRecord {
				t.Fatalf("FirstBoot = %v, %+v, %v; want the record's host name %q", ran, rec, err, tc.wantRecord)
			}
			p := filepath.Join(deploy, "etc/hostname")
			got, err := os.ReadFile(p)
			if tc.want == "" {
				if !os.IsNotExist(err) {
					t.Errorf("/etc/hostname = %q, %v; want none", got, err)
				}
				return
			}
			if string(got) != tc.want {
				t.Errorf("/etc/hostname = %q, %v; want %q", got, err, tc.want)
			}
			if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o644 {
				t.Errorf("/etc/hostname's mode = %v, %v; want 0644", fi.Mode(), err)
			}
			if st, err := provision.ReadState(phys); err != nil || st.Record == nil || st.Record.Hostname != tc.wantRecord {
				t.Errorf("ReadState = %+v, %v; want the record's host name %q", st, err, tc.wantRecord)
			}
		})
	}
}
