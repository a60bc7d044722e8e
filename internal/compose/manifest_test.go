package compose

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/testutil"
)

const goodManifest = `name: demo
version: "2.1"
ref: demo/x86_64/stable
packages: [systemd, linux-image-amd64]
variant: minbase
suite: trixie
mirror: http://deb.debian.org/debian
components: [main, contrib]
path-exclude: [/usr/share/man/*]
path-include: [/usr/share/doc/*/copyright]
overlays:
  - source: files
  - source: motd
    dest: /etc/motd
units:
  enable: [systemd-networkd.service]
  mask: [apt-daily.timer, getty@tty1.service]
kernel-args: [console=ttyS0, quiet]
metadata:
  zeta: "z"
  alpha: "a"
`

func TestParseManifest(t *testing.T) {
	t.Parallel()
	m, err := ParseManifest("m.yaml", []byte(goodManifest))
	if err != nil {
		t.Fatalf("ParseManifest(good) = %v", err)
	}
	want := &Manifest{
		Name: "demo", Version: "2.1", Ref: "demo/x86_64/stable", Packages: []string{"systemd", "linux-image-amd64"},
		Variant: "minbase", Suite: "trixie", Mirror: "http://deb.debian.org/debian", Components: []string{"main", "contrib"},
		PathExclude: []string{"/usr/share/man/*"}, PathInclude: []string{"/usr/share/doc/*/copyright"},
		Overlays:    []Overlay{{Source: "files", Dest: "/"}, {Source: "motd", Dest: "/etc/motd"}},
		EnableUnits: []string{"systemd-networkd.service"}, MaskUnits: []string{"apt-daily.timer", "getty@tty1.service"},
		KernelArgs: []string{"console=ttyS0", "quiet"},
		Metadata:   []MetadataEntry{{"alpha", "a"}, {"zeta", "z"}},
	}
	if d := cmp.Diff(want, m); d != "" {
		t.Errorf("ParseManifest(good) mismatch (-want +got):\n%s", d)
	}
}

func TestLoadExampleManifest(t *testing.T) {
	t.Parallel()
	path := filepath.Join(testutil.RepoRoot(t), "examples/minimal.yaml")
	m, err := LoadManifest(path)
	if err != nil {
		t.Fatalf("LoadManifest(%s) = %v", path, err)
	}
	for _, p := range []string{"systemd", "systemd-sysv", "udev", "linux-image-amd64", "systemd-boot"} {
		if !contains(m.Packages, p) {
			t.Errorf("examples/minimal.yaml packages = %v, want %s in it", m.Packages, p)
		}
	}
	if !contains(m.PathExclude, "/etc/kernel/postinst.d/initramfs-tools") {
		t.Errorf("examples/minimal.yaml builds initramfs-tools' initramfs, which strata compose replaces with its own: exclude /etc/kernel/postinst.d/initramfs-tools")
	}
}

func TestParseManifestErrors(t *testing.T) {
	t.Parallel()
	base := "name: demo\nversion: \"1\"\nref: demo/stable\npackages: [systemd]\n"
	tests := []struct {
		name, yaml string
		want       []string // problems, in order
	}{
		{"not yaml", "name: [", []string{"m.yaml: yaml: line 1: did not find expected node content"}},
		{"empty", "", []string{"m.yaml: empty manifest"}},
		{"not a mapping", "- a\n", []string{"m.yaml:1:1: want a mapping, got a list"}},
		{"missing keys", "name: demo\n", []string{
			"m.yaml:1:1: version: required key is missing", "m.yaml:1:1: ref: required key is missing",
			"m.yaml:1:1: packages: required key is missing"}},
		{"unknown key", base + "packagez: [a]\n", []string{"m.yaml:5:1: packagez: unknown key (known: name, version, ref, packages, variant, suite, mirror, sources, components, path-exclude, path-include, overlays, units, kernel-args, metadata)"}},
		{"duplicate key", base + "name: other\n", []string{"m.yaml:5:1: name: duplicate key"}},
		{"bad name", strings.Replace(base, "name: demo", "name: Demo OS", 1), []string{`m.yaml:1:7: name: "Demo OS" is not an image name (want 0-9, a-z, '.', '_', '-')`}},
		{"bad version", strings.Replace(base, `"1"`, `"1 beta"`, 1), []string{`m.yaml:2:10: version: "1 beta" is not a version (want 0-9, a-z, '.', '_', '-', as os-release VERSION_ID)`}},
		{"version not scalar", strings.Replace(base, `"1"`, `[1]`, 1), []string{`m.yaml:2:10: version: want a string, got a list`}},
		{"bad ref", strings.Replace(base, "demo/stable", "demo//stable", 1), []string{`m.yaml:3:6: ref: "demo//stable" is not a valid ref`}},
		{"bad package", strings.Replace(base, "[systemd]", "[systemd, Foo_Bar]", 1), []string{`m.yaml:4:21: packages[1]: "Foo_Bar" is not a Debian package name`}},
		{"duplicate package", strings.Replace(base, "[systemd]", "[systemd, udev, systemd]", 1), []string{`m.yaml:4:27: packages[2]: "systemd" is listed twice`}},
		{"no packages", strings.Replace(base, "[systemd]", "[]", 1), []string{`m.yaml:4:11: packages: empty list`}},
		{"packages not list", strings.Replace(base, "[systemd]", "systemd", 1), []string{`m.yaml:4:11: packages: want a list, got a scalar`}},
		{"bad variant", base + "variant: tiny\n", []string{`m.yaml:5:10: variant: "tiny" is not a variant (want one of minbase, required, important, standard)`}},
		{"bad mirror", base + "mirror: ftp://x/debian\n", []string{`m.yaml:5:9: mirror: "ftp://x/debian" is not an http, https or file URL`}},
		{"mirror and sources", base + "mirror: http://x/debian\nsources: [\"deb http://x/debian bookworm main\"]\n", []string{`m.yaml:6:10: sources: mirror and sources are exclusive`}},
		{"bad source", base + "sources: [\"http://x/debian bookworm\"]\n", []string{`m.yaml:5:11: sources[0]: "http://x/debian bookworm" is not a one-line apt source (deb URI SUITE [COMPONENT...])`}},
		{"components without mirror", base + "components: [main]\n", []string{`m.yaml:5:13: components: only used with mirror`}},
		{"relative exclude", base + "path-exclude: [usr/share/man/*]\n", []string{`m.yaml:5:16: path-exclude[0]: "usr/share/man/*" is not an absolute path pattern`}},
		{"bad unit", base + "units:\n  enable: [a.service, b.service, foo]\n", []string{`m.yaml:6:34: units.enable[2]: "foo" is not a unit name`}},
		{"bad mask", base + "units:\n  mask: [\"x y.service\"]\n", []string{`m.yaml:6:10: units.mask[0]: "x y.service" is not a unit name`}},
		{"unknown units key", base + "units:\n  disable: [a.service]\n", []string{`m.yaml:6:3: units.disable: unknown key (known: enable, mask)`}},
		{"overlay without source", base + "overlays:\n  - dest: /etc\n", []string{`m.yaml:6:5: overlays[0].source: required key is missing`}},
		{"overlay into var", base + "overlays:\n  - source: x\n    dest: /var/lib/x\n", []string{`m.yaml:7:11: overlays[0].dest: "/var/lib/x" is emptied or replaced by compose (see docs/compose.md)`}},
		{"overlay relative dest", base + "overlays:\n  - source: x\n    dest: etc\n", []string{`m.yaml:7:11: overlays[0].dest: "etc" is not an absolute path`}},
		{"overlay not mapping", base + "overlays: [x]\n", []string{`m.yaml:5:12: overlays[0]: want a mapping, got a scalar`}},
		{"kernel arg with space", base + "kernel-args: [\"a b\"]\n", []string{`m.yaml:5:15: kernel-args[0]: "a b" is not one kernel argument (no spaces or quotes)`}},
		{"reserved metadata", base + "metadata:\n  ostree.linux: x\n  version: y\n", []string{
			`m.yaml:6:3: metadata.ostree.linux: key "ostree.linux" is reserved (version, ostree.*, strata.*)`,
			`m.yaml:7:3: metadata.version: key "version" is reserved (version, ostree.*, strata.*)`}},
		{"metadata not string", base + "metadata:\n  a: [1]\n", []string{`m.yaml:6:6: metadata.a: want a string, got a list`}},
		{"metadata null", base + "metadata:\n  a:\n", []string{`m.yaml:6:5: metadata.a: want a string, got null`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m, err := ParseManifest("m.yaml", []byte(tc.yaml))
			if err == nil {
				t.Fatalf("ParseManifest(%q) = %+v, want an error", tc.yaml, m)
			}
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("ParseManifest(%q) error %v is not ErrInvalid", tc.yaml, err)
			}
			var me *ManifestError
			if !errors.As(err, &me) {
				t.Fatalf("ParseManifest(%q) error %T, want *ManifestError", tc.yaml, err)
			}
			var got []string
			for _, p := range me.Problems {
				got = append(got, p.String())
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("ParseManifest(%q) problems mismatch (-want +got):\n%s", tc.yaml, d)
			}
		})
	}
}
