package provconfig

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func filesFS(t *testing.T) Options {
	t.Helper()
	r, err := os.OpenRoot("testdata/files")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return Options{Files: r.FS()}
}

func TestParseJSONVersions(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"3.0.0", "3.1.0", "3.2.0", "3.3.0", "3.4.0", "3.5.0"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			raw := `{"ignition":{"version":"` + v + `"},"storage":{"files":[{"path":"/etc/hostname","mode":420,"contents":{"source":"data:,node1"}}]}}`
			cfg, rpt, err := Parse([]byte(raw), Options{})
			if err != nil {
				t.Fatalf("Parse(%s) error %v, report:\n%s", v, err, rpt)
			}
			if cfg.Ignition.Version != MaxVersion || len(cfg.Storage.Files) != 1 || *cfg.Storage.Files[0].Mode != 420 {
				t.Errorf("Parse(%s) = version %s, files %+v; want 3.5.0 and one file of mode 420", v, cfg.Ignition.Version, cfg.Storage.Files)
			}
		})
	}
}

func TestParseJSONErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, raw string
		class     error
		finding   string
	}{
		{"invalid JSON", `{"ignition": {`, errdefs.ErrInvalid, "error at $"},
		{"unsupported version", `{"ignition":{"version":"3.6.0"}}`, errdefs.ErrUnsupported, `error at $.ignition.version: unsupported config version "3.6.0"`},
		{"spec 2", `{"ignition":{"version":"2.3.0"}}`, errdefs.ErrUnsupported, `unsupported config version "2.3.0"`},
		{"relative path", `{"ignition":{"version":"3.3.0"},"storage":{"files":[{"path":"etc/x"}]}}`, errdefs.ErrInvalid, "error at $.storage.files.0.path, line 1 col 61: path not absolute"},
		{"empty", ``, errdefs.ErrInvalid, "config is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, rpt, err := ParseJSON([]byte(tt.raw))
			if !errors.Is(err, tt.class) {
				t.Errorf("ParseJSON(%s) error = %v, want %v", tt.raw, err, tt.class)
			}
			if !strings.Contains(rpt.String(), tt.finding) {
				t.Errorf("ParseJSON(%s) report = %q, want it to contain %q", tt.raw, rpt.String(), tt.finding)
			}
		})
	}
}

func TestParseJSONWarnings(t *testing.T) {
	t.Parallel()
	_, rpt, err := ParseJSON([]byte(`{"ignition":{"version":"3.4.0"},"bogus":1}`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Finding{{Severity: SeverityWarning, Path: "$.bogus", Line: 1, Column: 33, Message: "unused key bogus"}}
	if diff := cmp.Diff(want, rpt.Findings); diff != "" {
		t.Errorf("ParseJSON findings (-want +got):\n%s", diff)
	}
}

const fullYAML = `variant: fcos
version: 1.4.0
passwd:
  users:
    - name: core
      uid: 1000
      groups: [wheel]
      password_hash: "$y$j9T$abc"
      ssh_authorized_keys:
        - ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIINLINE a@b
      ssh_authorized_keys_local:
        - keys.pub
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
    - path: /etc/motd
      contents:
        local: motd
      user:
        name: core
  links:
    - path: /etc/localtime
      target: ../usr/share/zoneinfo/UTC
  trees:
    - local: tree
      path: /opt/app
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
        - name: 10-env.conf
          contents_local: env.conf
kernel_arguments:
  should_exist: [console=ttyS0]
`

func TestTranslate(t *testing.T) {
	t.Parallel()
	js, rpt, err := Translate([]byte(fullYAML), filesFS(t))
	if err != nil {
		t.Fatalf("Translate error %v, report:\n%s", err, rpt)
	}
	var got map[string]any
	if err := json.Unmarshal(js, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"ignition": map[string]any{"version": "3.3.0"},
		"passwd": map[string]any{"users": []any{map[string]any{
			"name": "core", "uid": 1000.0, "groups": []any{"wheel"}, "passwordHash": "$y$j9T$abc",
			"sshAuthorizedKeys": []any{"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIINLINE a@b", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKEYFILE one@host"},
		}}},
		"storage": map[string]any{
			"directories": []any{map[string]any{"path": "/var/lib/app", "mode": 488.0}},
			"files": []any{
				map[string]any{"path": "/etc/hostname", "mode": 420.0, "overwrite": true,
					"contents": map[string]any{"source": "data:,node1", "compression": ""}},
				map[string]any{"path": "/etc/motd", "user": map[string]any{"name": "core"},
					"contents": map[string]any{"source": "data:,hello%0A", "compression": ""}},
				map[string]any{"path": "/opt/app/run.sh", "mode": 493.0,
					"contents": map[string]any{"source": "data:,%23!%2Fbin%2Fsh%0Aecho%20hi%0A", "compression": ""}},
				map[string]any{"path": "/opt/app/sub/data", "mode": 420.0,
					"contents": map[string]any{"source": "data:,x%0A", "compression": ""}},
			},
			"links": []any{
				map[string]any{"path": "/etc/localtime", "target": "../usr/share/zoneinfo/UTC"},
				map[string]any{"path": "/opt/app/sub/link", "target": "../run.sh"},
			},
		},
		"systemd": map[string]any{"units": []any{map[string]any{
			"name": "app.service", "enabled": true, "contents": "[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n",
			"dropins": []any{map[string]any{"name": "10-env.conf", "contents": "[Service]\nEnvironment=A=1\n"}},
		}}},
		"kernelArguments": map[string]any{"shouldExist": []any{"console=ttyS0"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Translate (-want +got):\n%s", diff)
	}
	if len(rpt.Findings) != 0 {
		t.Errorf("Translate report = %s, want none", rpt)
	}
	// The output parses as the spec the fcos version names.
	if _, rpt, err := ParseJSON(js); err != nil {
		t.Errorf("ParseJSON(translated) error %v:\n%s", err, rpt)
	}
}

func TestTranslateErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, yaml string
		class      error
		want       []string
	}{
		{"unknown top key", "variant: fcos\nversion: 1.5.0\nstorge: {}\n", errdefs.ErrInvalid,
			[]string{"error at $.storge, line 3 col 1: unknown key storge"}},
		{"unknown nested key", "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /a\n      mod: 0644\n", errdefs.ErrInvalid,
			[]string{"error at $.storage.files.0.mod, line 6 col 7: unknown key mod"}},
		{"camelCase key", "variant: fcos\nversion: 1.5.0\npasswd:\n  users:\n    - name: a\n      passwordHash: x\n", errdefs.ErrInvalid,
			[]string{"line 6 col 7: unknown key passwordHash (did you mean password_hash?)"}},
		{"field of a newer spec", "variant: fcos\nversion: 1.0.0\nkernel_arguments:\n  should_exist: [a]\n", errdefs.ErrInvalid,
			[]string{"line 3 col 1: unknown key kernel_arguments"}},
		{"ignition version", "variant: fcos\nversion: 1.5.0\nignition:\n  version: 3.4.0\n", errdefs.ErrInvalid,
			[]string{"line 4 col 3: unknown key version under ignition"}},
		{"wrong type", "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /a\n      mode: rw\n", errdefs.ErrInvalid,
			[]string{`line 6 col 13: want an integer, found the scalar "rw"`}},
		{"duplicate key", "variant: fcos\nversion: 1.5.0\nstorage:\n  files: []\n  files: []\n", errdefs.ErrInvalid,
			[]string{"line 5 col 3: duplicate key files"}},
		{"bad variant", "variant: flatcar\nversion: 1.0.0\n", errdefs.ErrUnsupported,
			[]string{`line 1 col 10: unsupported variant "flatcar"`}},
		{"bad version", "variant: fcos\nversion: 1.7.0\n", errdefs.ErrUnsupported,
			[]string{`line 2 col 10: unsupported fcos version "1.7.0"`}},
		{"two sources", "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        source: data:,a\n        inline: b\n", errdefs.ErrInvalid,
			[]string{"line 8 col 17: a resource takes only one of source, inline and local"}},
		{"local escapes", "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: /a\n      contents:\n        local: ../x\n", errdefs.ErrInvalid,
			[]string{`line 7 col 16: local file "../x" must be a relative path inside the files directory`}},
		{"ignition validation on YAML lines", "variant: fcos\nversion: 1.5.0\nstorage:\n  files:\n    - path: relative\n", errdefs.ErrInvalid,
			[]string{"error at $.storage.files.0.path, line 5 col 13: path not absolute"}},
		{"not YAML", "variant: [\n", errdefs.ErrInvalid, []string{"yaml: line"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, rpt, err := Translate([]byte(tt.yaml), filesFS(t))
			if !errors.Is(err, tt.class) {
				t.Errorf("Translate error = %v, want %v; report:\n%s", err, tt.class, rpt)
			}
			for _, w := range tt.want {
				if !strings.Contains(rpt.String(), w) {
					t.Errorf("Translate report =\n%s\nwant it to contain %q", rpt, w)
				}
			}
		})
	}
}

func TestDataURL(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("the same line again\n", 200)
	tests := []struct {
		name, data, wantPrefix, wantComp string
		compress                         bool
	}{
		{"short text is escaped", "a b", "data:,a%20b", "", true},
		{"binary is base64", "\x00\x01\x02\xff\xfe\x00\x01\x02\xff\xfe", "data:;base64,AAEC//4AAQL//g==", "", true},
		{"repetitive text is gzipped", long, "data:;base64,H4sI", "gzip", true},
		{"no gzip where not allowed", long, "data:;base64,dGhl", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			uri, comp := dataURL([]byte(tt.data), tt.compress)
			if !strings.HasPrefix(uri, tt.wantPrefix) || comp != tt.wantComp {
				t.Errorf("dataURL(%.20q) = %.30q, %q; want prefix %q, %q", tt.data, uri, comp, tt.wantPrefix, tt.wantComp)
			}
		})
	}
}

func TestMountUnit(t *testing.T) {
	t.Parallel()
	name, contents := MountUnit("/dev/disk/by-label/data", "ext4", "/var/lib/containers", nil)
	if name != "var-lib-containers.mount" {
		t.Errorf("MountUnit name = %q, want var-lib-containers.mount", name)
	}
	for _, w := range []string{"What=/dev/disk/by-label/data\n", "Where=/var/lib/containers\n", "Type=ext4\n",
		`Requires=systemd-fsck@dev-disk-by\x2dlabel-data.service`, "RequiredBy=local-fs.target"} {
		if !strings.Contains(contents, w) {
			t.Errorf("MountUnit contents =\n%s\nwant %q", contents, w)
		}
	}
	if name, _ := MountUnit("/dev/vdb2", "swap", "", nil); name != "dev-vdb2.swap" {
		t.Errorf("MountUnit(swap) name = %q, want dev-vdb2.swap", name)
	}
}

func FuzzTranslate(f *testing.F) {
	f.Add([]byte(fullYAML))
	f.Add([]byte("variant: fcos\nversion: 1.5.0\nstorage: {files: [{path: /a, contents: {inline: x}}]}\n"))
	f.Add([]byte("variant: fcos\nversion: 1.0.0\n&a x: *a\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		js, rpt, err := Translate(raw, Options{})
		if err != nil {
			if !rpt.IsFatal() {
				t.Fatalf("Translate error %v with a report without errors:\n%s", err, rpt)
			}
			return
		}
		if _, _, err := ParseJSON(js); err != nil {
			t.Fatalf("Translate output does not parse: %v\n%s", err, js)
		}
	})
}

func TestTranslateSugar(t *testing.T) {
	t.Parallel()
	yml := `variant: fcos
version: 1.5.0
storage:
  filesystems:
    - device: /dev/disk/by-label/data
      format: ext4
      path: /var/lib/containers
      with_mount_unit: true
  files:
    - path: /opt/app/run.sh
      mode: 0700
  trees:
    - local: tree
      path: /opt/app
      dir_mode: 0750
`
	js, rpt, err := Translate([]byte(yml), filesFS(t))
	if err != nil {
		t.Fatalf("Translate: %v\n%s", err, rpt)
	}
	cfg, _, err := ParseJSON(js)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Systemd.Units) != 1 || cfg.Systemd.Units[0].Name != "var-lib-containers.mount" || !*cfg.Systemd.Units[0].Enabled ||
		!strings.Contains(*cfg.Systemd.Units[0].Contents, "Where=/var/lib/containers\n") {
		t.Errorf("with_mount_unit gave units %+v, want an enabled var-lib-containers.mount", cfg.Systemd.Units)
	}
	// The explicit entry keeps its mode and gets the tree's contents.
	var run, data bool
	for _, f := range cfg.Storage.Files {
		switch f.Path {
		case "/opt/app/run.sh":
			run = *f.Mode == 0o700 && f.Contents.Source != nil && strings.Contains(*f.Contents.Source, "echo")
		case "/opt/app/sub/data":
			data = *f.Mode == 0o644
		}
	}
	if !run || !data || len(cfg.Storage.Files) != 2 {
		t.Errorf("tree files = %+v; want run.sh 0700 with the tree's contents and sub/data 0644", cfg.Storage.Files)
	}
	if len(cfg.Storage.Directories) != 1 || cfg.Storage.Directories[0].Path != "/opt/app/sub" || *cfg.Storage.Directories[0].Mode != 0o750 {
		t.Errorf("tree directories = %+v; want /opt/app/sub 0750", cfg.Storage.Directories)
	}
}
