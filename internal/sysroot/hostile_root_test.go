//go:build root

package sysroot_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// Hostile commits: a commit's tree is untrusted content. Deploying one
// must never read, write or publish a file outside its deployment, and
// nothing it carries may add lines to a boot entry.

// hostileSysroot is a sysroot (its /boot on a tmpfs of its own) with v1
// deployed and local /etc changes made: hostname edited, gone.conf
// removed, local.conf added. A deploy after it merges those three into the
// new etc.
func hostileSysroot(t *testing.T) (string, *sysroot.Sysroot) {
	t.Helper()
	s, sr := newSysroot(t)
	mountTmpfs(t, filepath.Join(s, "boot"), "mode=0755")
	sysroottest.FakeOS{Version: "1", Etc: map[string]string{"hostname": "v1\n", "gone.conf": "default\n"}}.Commit(t, sr.Repo(), "fakeos/stable")
	d1, err := sr.Deploy(context.Background(), "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"rw"}})
	if err != nil {
		t.Fatalf("Deploy(v1): %v", err)
	}
	etc := filepath.Join(s, d1.Path(), "etc")
	if err := os.WriteFile(filepath.Join(etc, "hostname"), []byte("node-local\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(etc, "gone.conf")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(etc, "local.conf"), []byte("local\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s, sr
}

// hostDir makes a directory outside the sysroot with files, standing for
// the host's /etc (or /usr), and returns it with its tree.
func hostDir(t *testing.T, files map[string]string, mode os.FileMode) (string, map[string]string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "host")
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), mode); err != nil {
			t.Fatal(err)
		}
	}
	tree, err := sysroottest.Tree(dir)
	if err != nil {
		t.Fatal(err)
	}
	return dir, tree
}

func checkHostUntouched(t *testing.T, dir string, want map[string]string) {
	t.Helper()
	got, err := sysroottest.Tree(dir)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("host directory %s changed (-before +after):\n%s", dir, diff)
	}
}

// grepTree reports the files under dir whose content holds secret.
func grepTree(t *testing.T, dir, secret string) []string {
	t.Helper()
	var hits []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Contains(b, []byte(secret)) {
			hits = append(hits, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hits
}

// TestDeployRefusesSymlinkedEtc: a commit whose etc, usr/etc or usr is a
// symlink to a host directory. Followed, the copy of usr/etc made etc a
// link to the host directory, and the /etc merge then deleted gone.conf
// there, rewrote hostname with the node's edit and created local.conf;
// a symlinked usr also gave the host's kernel to the boot checksum.
func TestDeployRefusesSymlinkedEtc(t *testing.T) {
	hostFiles := map[string]string{
		"hostname":                "host\n",
		"gone.conf":               "host file\n",
		"lib/modules/6.1/vmlinuz": "host kernel\n",
		"etc/hostname":            "host usr/etc\n",
		"etc/gone.conf":           "host usr/etc file\n",
	}
	tests := []struct {
		name string
		os   func(host string) sysroottest.FakeOS
	}{
		{"usr/etc", func(host string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{"usr/etc": host}}
		}},
		{"etc", func(host string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Omit: []string{"usr/etc"}, Symlinks: map[string]string{"etc": host}}
		}},
		{"relative usr/etc", func(host string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{"usr/etc": "../../../../../../../../../../../.." + host}}
		}},
		{"usr", func(host string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{"usr": host}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, sr := hostileSysroot(t)
			host, before := hostDir(t, hostFiles, 0o644)
			tc.os(host).Commit(t, sr.Repo(), "fakeos/stable")
			want := names(sr.Deployments())
			_, err := sr.Deploy(context.Background(), "fakeos", "fakeos/stable", sysroot.DeployOptions{})
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Deploy(%s -> host) = %v, want ErrInvalid", tc.name, err)
			}
			checkHostUntouched(t, host, before)
			if got := names(sr.Deployments()); !cmp.Equal(got, want) {
				t.Errorf("Deployments() = %v, want %v (unchanged)", got, want)
			}
			if hits := grepTree(t, filepath.Join(s, "boot"), "host kernel"); len(hits) > 0 {
				t.Errorf("host files copied into /boot: %v", hits)
			}
		})
	}
}

// TestMergeRefusesSymlinkedEtcOfMergeDeployment: the merge deployment
// itself (deployed by another tool, or modified since) has etc as a
// symlink to a host directory; the merge must not read or write there.
func TestMergeRefusesSymlinkedEtcOfMergeDeployment(t *testing.T) {
	s, sr := hostileSysroot(t)
	host, before := hostDir(t, map[string]string{"hostname": "host\n", "gone.conf": "host file\n"}, 0o644)
	d1 := sr.Deployments()[0]
	root := filepath.Join(s, d1.Path())
	if err := sysroottest.SetImmutable(root, false); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	sysroottest.FakeOS{Version: "2", Etc: map[string]string{"hostname": "v2\n", "gone.conf": "default\n"}}.Commit(t, sr.Repo(), "fakeos/stable")
	_, err := sr.Deploy(context.Background(), "fakeos", "fakeos/stable", sysroot.DeployOptions{})
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Deploy(merge deployment etc -> host) = %v, want ErrInvalid", err)
	}
	checkHostUntouched(t, host, before)
}

// TestDeployRefusesSymlinkedKernel: kernel files that are symlinks to a
// host file only root may read. Followed, the file was hashed, hardlinked
// (as a symlink) into /boot, and copied world-readable onto the ESP.
func TestDeployRefusesSymlinkedKernel(t *testing.T) {
	const secret = "host secret 0600"
	const mod = "usr/lib/modules/" + kver + "/"
	tests := []struct {
		name string
		os   func(hostFile, hostDir string) sysroottest.FakeOS
	}{
		{"vmlinuz", func(f, _ string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{mod + "vmlinuz": f}}
		}},
		{"initramfs.img", func(f, _ string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{mod + "initramfs.img": f}}
		}},
		{"devicetree", func(f, _ string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{mod + "devicetree": f}}
		}},
		{".vmlinuz.hmac", func(f, _ string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{mod + ".vmlinuz.hmac": f}}
		}},
		{"dtb", func(_, d string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{mod + "dtb": d}}
		}},
		{"usr/lib/modules", func(_, d string) sysroottest.FakeOS {
			return sysroottest.FakeOS{Version: "2", Symlinks: map[string]string{"usr/lib/modules": d}}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, sr := hostileSysroot(t)
			host, before := hostDir(t, map[string]string{
				"secret":                secret + "\n",
				kver + "/vmlinuz":       secret + " kernel\n",
				kver + "/initramfs.img": secret + " initramfs\n",
				"board.dtb":             secret + " dtb\n",
			}, 0o600)
			tc.os(filepath.Join(host, "secret"), host).Commit(t, sr.Repo(), "fakeos/stable")
			want := names(sr.Deployments())
			_, err := sr.Deploy(context.Background(), "fakeos", "fakeos/stable", sysroot.DeployOptions{})
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Deploy(%s -> host file) = %v, want ErrInvalid", tc.name, err)
			}
			if hits := grepTree(t, filepath.Join(s, "boot"), secret); len(hits) > 0 {
				t.Errorf("host secret copied into /boot: %v", hits)
			}
			checkHostUntouched(t, host, before)
			if got := names(sr.Deployments()); !cmp.Equal(got, want) {
				t.Errorf("Deployments() = %v, want %v (unchanged)", got, want)
			}
		})
	}
}

// TestDeployBootEntryInjection: the commit's version and the kernel
// directory name go into the BLS entry. A newline there added an options
// line (init=/bin/sh) that systemd-boot appends to the kernel command line.
func TestDeployBootEntryInjection(t *testing.T) {
	const inject = "\noptions init=/bin/sh rw"
	tests := []struct {
		name string
		os   sysroottest.FakeOS
	}{
		{"version", sysroottest.FakeOS{Version: "1.0" + inject}},
		{"version with escape sequence", sysroottest.FakeOS{Version: "1.0\x1b]0;owned\x07"}},
		{"kernel directory", sysroottest.FakeOS{Version: "2", NoKernel: true, Files: map[string]string{
			"usr/lib/modules/6.1\noptions single rw/vmlinuz": "fake kernel v2\n", // a file name holds no slash
		}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, sr := hostileSysroot(t)
			tc.os.Commit(t, sr.Repo(), "fakeos/stable")
			_, err := sr.Deploy(context.Background(), "fakeos", "fakeos/stable", sysroot.DeployOptions{})
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Deploy(%q) = %v, want ErrInvalid", tc.name, err)
			}
			checkEntries(t, s)
		})
	}
}

// TestBootEntryEscapesTitle: a PRETTY_NAME with control characters (the
// title of an entry) is written with them escaped: the deployment is fine,
// its entry has only its own lines.
func TestBootEntryEscapesTitle(t *testing.T) {
	s, sr := newSysroot(t)
	mountTmpfs(t, filepath.Join(s, "boot"), "mode=0755")
	sysroottest.FakeOS{Version: "1", Pretty: "Fake\x1b[2J\rOS"}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(context.Background(), "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"rw"}}); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	got := checkEntries(t, s)
	if len(got) != 1 || !strings.HasPrefix(got[0], "title Fake\\x1b[2J\\x0dOS 1 (ostree:0)\n") {
		t.Errorf("entries = %q, want one titled %q", got, "Fake\\x1b[2J\\x0dOS 1 (ostree:0)")
	}
}

// checkEntries checks that every BLS entry of the sysroot has one line
// per key, no control character but the line ends, and no options line
// but the sysroot's own; it returns the entries.
func checkEntries(t *testing.T, s string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(s, "boot/loader/entries/*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, f := range files {
		b := readFile(t, f)
		out = append(out, b)
		if strings.ContainsFunc(b, func(r rune) bool { return r != '\n' && (r < 0x20 || r == 0x7f) }) {
			t.Errorf("%s holds a control character:\n%q", f, b)
		}
		seen := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSuffix(b, "\n"), "\n") {
			k, _, _ := strings.Cut(line, " ")
			if seen[k] {
				t.Errorf("%s has key %s twice:\n%s", f, k, b)
			}
			seen[k] = true
			if strings.Contains(line, "init=/bin/sh") {
				t.Errorf("%s carries the injected argument:\n%s", f, b)
			}
		}
	}
	return out
}
