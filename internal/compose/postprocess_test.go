package compose

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

const testKver = "6.1.0-99-amd64"

// synthTree writes a small tree shaped like mmdebstrap's output and returns
// its path and the owner string ("user group") of files the test creates.
func synthTree(t *testing.T) (string, string) {
	t.Helper()
	root := t.TempDir()
	owner := "root root"
	passwd, group := "root:x:0:0:root:/root:/bin/bash\n", "root:x:0:\nmail:x:8:\n"
	if uid := os.Getuid(); uid != 0 {
		passwd += fmt.Sprintf("me:x:%d:%d::/home/me:/bin/sh\n", uid, os.Getgid())
		group += fmt.Sprintf("us:x:%d:\n", os.Getgid())
		owner = "me us"
	}
	files := map[string]string{
		"boot/vmlinuz-" + testKver:                     "kernel",
		"boot/initrd.img-" + testKver:                  "initramfs",
		"boot/config-" + testKver:                      "config",
		"boot/System.map-" + testKver:                  "map",
		"boot/grub/grubenv":                            "x",
		"usr/lib/modules/" + testKver + "/kernel/a.ko": "module",
		"usr/lib/os-release":                           "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION=\"12 (bookworm)\"\nID=debian\n",
		"usr/lib/tmpfiles.d/var.conf":                  "d /var/log 0755 - - -\nL /var/run - - - - ../run\n",
		// Adjusting a path ("z") does not create it: /var/mail still gets its own line.
		"usr/lib/tmpfiles.d/adjust.conf":                          "z /var/mail 2775 root mail -\nL+ /var/lock2 - - - - /run/lock\n",
		"usr/lib/systemd/systemd-journald":                        "journald",
		"usr/lib/systemd/system/ssh.service":                      "[Service]\nExecStartPre=/usr/sbin/sshd -t\n",
		"usr/lib/python3/dist-packages/m.py":                      "pass",
		"usr/lib/python3/dist-packages/__pycache__/m.cpython.pyc": "bytecode",
		"etc/passwd":                   passwd,
		"etc/group":                    group,
		"etc/shadow":                   "root:*:19000:0:99999:7:::\nnobody:*:19001:0:99999:7:::\n",
		"etc/passwd-":                  passwd,
		"etc/hostname":                 "buildhost\n",
		"etc/resolv.conf":              "nameserver 10.0.0.1\n",
		"etc/machine-id":               "0123456789abcdef0123456789abcdef\n",
		"etc/ssh/ssh_host_ed25519_key": "secret",
		"etc/fstab":                    "# fstab\n",
		"var/lib/dpkg/status": "Package: systemd\nStatus: install ok installed\nArchitecture: amd64\nVersion: 252.39-1~deb12u1\n\n" +
			"Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1.0\n\n" +
			"Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9+deb12u10\n",
		"var/lib/dpkg/info/systemd.list": "/usr\n",
		"var/cache/debconf/config.dat":   "cache",
		"var/log/wtmp":                   "",
		"var/log/apt/history.log":        "log",
		"root/.bashrc":                   "# bashrc",
		"run/lock/x":                     "",
		"tmp/junk":                       "",
	}
	for p, c := range files {
		writeFile(t, filepath.Join(root, p), c)
	}
	for _, d := range []string{"home", "opt", "srv", "mnt", "usr/local/bin", "usr/local/share/man", "dev/pts", "proc", "sys", "var/spool"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mkdirMode(t, filepath.Join(root, "var/tmp"), 0o1777)
	mkdirMode(t, filepath.Join(root, "var/mail"), 0o2775)
	mkdirMode(t, filepath.Join(root, "root"), 0o700)
	for l, target := range map[string]string{
		"etc/os-release": "../usr/lib/os-release", "vmlinuz": "boot/vmlinuz-" + testKver,
		"initrd.img": "boot/initrd.img-" + testKver, "var/lock": "/run/lock", "usr/local/man": "share/man",
	} {
		if err := os.Symlink(target, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(root, "etc/fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	return root, owner
}

func writeFile(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mkdirMode(t *testing.T, p string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	m := mode.Perm()
	if mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	if mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var epoch = time.Unix(1700000000, 0)

func TestPostProcess(t *testing.T) {
	t.Parallel()
	root, owner := synthTree(t)
	info, err := PostProcess(context.Background(), root, PostProcessOptions{
		Name: "demo", Version: "3.1", KernelArgs: []string{"console=ttyS0", "quiet"}, SourceDateEpoch: epoch,
	})
	if err != nil {
		t.Fatalf("PostProcess() = %v", err)
	}
	if info.Kernel != testKver {
		t.Errorf("PostProcess().Kernel = %q, want %q", info.Kernel, testKver)
	}
	wantPkgs := []Package{{"libc6", "2.36-9+deb12u10"}, {"systemd", "252.39-1~deb12u1"}}
	if d := cmp.Diff(wantPkgs, info.Packages); d != "" {
		t.Errorf("PostProcess().Packages mismatch (-want +got):\n%s", d)
	}

	// Files and their contents.
	for p, want := range map[string]string{
		"usr/lib/modules/" + testKver + "/vmlinuz":       "kernel",
		"usr/lib/modules/" + testKver + "/initramfs.img": "initramfs",
		"usr/lib/modules/" + testKver + "/config":        "config",
		"usr/lib/modules/" + testKver + "/System.map":    "map",
		"usr/lib/modules/" + testKver + "/kernel/a.ko":   "module",
		"usr/etc/machine-id":                             "",
		"usr/etc/fstab":                                  "# fstab\n",
		"usr/etc/shadow":                                 "root:*:19675:0:99999:7:::\nnobody:*:19675:0:99999:7:::\n",
		"usr/lib/kernel/cmdline":                         "console=ttyS0 quiet\n",
		"usr/lib/sysimage/dpkg/info/systemd.list":        "/usr\n",
		"usr/lib/os-release": "NAME=\"Debian GNU/Linux\"\nID=debian\nIMAGE_ID=\"demo\"\nIMAGE_VERSION=\"3.1\"\n" +
			"PRETTY_NAME=\"demo 3.1\"\nVERSION=\"3.1\"\nVERSION_ID=\"3.1\"\n",
	} {
		if got := readString(t, filepath.Join(root, p)); got != want {
			t.Errorf("PostProcess: %s = %q, want %q", p, got, want)
		}
	}
	// Symlinks.
	for p, want := range map[string]string{
		"home": "var/home", "root": "var/roothome", "opt": "var/opt", "srv": "var/srv", "mnt": "var/mnt",
		"usr/local": "../var/usrlocal", "ostree": "sysroot/ostree", "usr/etc/os-release": "../usr/lib/os-release",
	} {
		if got, err := os.Readlink(filepath.Join(root, p)); err != nil || got != want {
			t.Errorf("PostProcess: readlink %s = %q, %v, want %q", p, got, err, want)
		}
	}
	// The host keys are gone; each node makes its own before sshd starts.
	if got := readString(t, filepath.Join(root, SSHHostKeysDropin)); !strings.Contains(got, "ExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\n") {
		t.Errorf("PostProcess: %s = %q, want ssh-keygen -A first", SSHHostKeysDropin, got)
	}
	// Gone, or empty.
	for _, p := range []string{"etc", "vmlinuz", "initrd.img", "usr/etc/hostname", "usr/etc/resolv.conf", "usr/etc/passwd-",
		"usr/etc/ssh/ssh_host_ed25519_key", "usr/etc/fifo", "usr/lib/python3/dist-packages/__pycache__"} {
		if _, err := os.Lstat(filepath.Join(root, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("PostProcess: %s exists (%v), want it removed", p, err)
		}
	}
	for _, d := range []string{"var", "boot", "run", "tmp", "dev", "proc", "sys", "sysroot"} {
		ents, err := os.ReadDir(filepath.Join(root, d))
		if err != nil || len(ents) != 0 {
			t.Errorf("PostProcess: %s has %d entries (%v), want an empty directory", d, len(ents), err)
		}
	}

	conf := readString(t, filepath.Join(root, TmpfilesConf))
	var lines []string
	for _, l := range strings.Split(conf, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	wantLines := []string{
		"L /var/lib/dpkg - - - - /usr/lib/sysimage/dpkg",
		"d /var/cache 0755 " + owner + " -",
		"d /var/cache/debconf 0755 " + owner + " -",
		"d /var/lib 0755 " + owner + " -",
		"L /var/lock - - - - /run/lock",
		"d /var/log/apt 0755 " + owner + " -",
		"f /var/log/wtmp 0644 " + owner + " -",
		"d /var/mail 2775 " + owner + " -",
		"d /var/spool 0755 " + owner + " -",
		"d /var/tmp 1777 " + owner + " -",
		"d /var/home 0755 " + owner + " -",
		"d /var/roothome 0700 " + owner + " -",
		"d /var/opt 0755 " + owner + " -",
		"d /var/srv 0755 " + owner + " -",
		"d /var/mnt 0755 " + owner + " -",
		"d /var/usrlocal/bin 0755 " + owner + " -",
		"L /var/usrlocal/man - - - - share/man",
		"d /var/usrlocal/share 0755 " + owner + " -",
		"d /var/usrlocal/share/man 0755 " + owner + " -",
		"d /var/usrlocal 0755 " + owner + " -",
		"d /var/log/journal 2755 root systemd-journal -",
	}
	if d := cmp.Diff(wantLines, lines); d != "" {
		t.Errorf("PostProcess: %s mismatch (-want +got):\n%s", TmpfilesConf, d)
	}
	if info.Tmpfiles != len(wantLines) {
		t.Errorf("PostProcess().Tmpfiles = %d, want %d", info.Tmpfiles, len(wantLines))
	}
}

func TestPostProcessInitramfsFunc(t *testing.T) {
	t.Parallel()
	root, _ := synthTree(t)
	var gotRoot, gotKver string
	_, err := PostProcess(context.Background(), root, PostProcessOptions{Name: "a", Version: "1", SourceDateEpoch: epoch,
		Initramfs: func(_ context.Context, r, kver string) error {
			gotRoot, gotKver = r, kver
			return os.WriteFile(filepath.Join(r, "usr/lib/modules", kver, "initramfs.img"), []byte("ours"), 0o644)
		}})
	if err != nil {
		t.Fatalf("PostProcess() = %v", err)
	}
	if gotRoot != root || gotKver != testKver {
		t.Errorf("Initramfs called with (%q, %q), want (%q, %q)", gotRoot, gotKver, root, testKver)
	}
	if got := readString(t, filepath.Join(root, "usr/lib/modules", testKver, "initramfs.img")); got != "ours" {
		t.Errorf("initramfs.img = %q, want the one the InitramfsFunc wrote", got)
	}
}

func TestPostProcessErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		modify func(t *testing.T, root string)
		opts   PostProcessOptions
		want   string
		class  error
	}{
		{"no kernel", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "boot/vmlinuz-"+testKver))
		}, PostProcessOptions{}, "no kernel in /boot", errdefs.ErrInvalid},
		{"two kernels", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "boot/vmlinuz-6.2"), "k")
		}, PostProcessOptions{}, "2 kernels in /boot", errdefs.ErrInvalid},
		{"no initramfs", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "boot/initrd.img-"+testKver))
		}, PostProcessOptions{}, "initramfs of kernel " + testKver, fs.ErrNotExist},
		{"failing initramfs func", nil, PostProcessOptions{Initramfs: func(context.Context, string, string) error {
			return errdefs.ErrUnsupported
		}}, "installing the kernel: unsupported", errdefs.ErrUnsupported},
		{"file in opt", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "opt/app/bin/app"), "x")
		}, PostProcessOptions{}, "/opt/app/bin/app: only directories and symlinks may be in /opt", errdefs.ErrInvalid},
		{"already has usr/etc", func(t *testing.T, root string) {
			writeFile(t, filepath.Join(root, "usr/etc/x"), "x")
		}, PostProcessOptions{}, "already has usr/etc", errdefs.ErrInvalid},
		{"no dpkg status", func(t *testing.T, root string) {
			os.Remove(filepath.Join(root, "var/lib/dpkg/status"))
		}, PostProcessOptions{}, "reading the package list", fs.ErrNotExist},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root, _ := synthTree(t)
			if tc.modify != nil {
				tc.modify(t, root)
			}
			tc.opts.Name, tc.opts.Version = "a", "1"
			_, err := PostProcess(context.Background(), root, tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !errors.Is(err, tc.class) {
				t.Errorf("PostProcess() = %v, want an error containing %q matching %v", err, tc.want, tc.class)
			}
		})
	}
}

func TestApplyOverlays(t *testing.T) {
	t.Parallel()
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "dir/etc/motd"), "hello\n")
	writeFile(t, filepath.Join(src, "dir/usr/bin/tool"), "#!/bin/sh\n")
	if err := os.Chmod(filepath.Join(src, "dir/usr/bin/tool"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("motd", filepath.Join(src, "dir/etc/motd.link")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "issue"), "strata\n")
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/motd"), "debian\n")
	// A symlink of the tree pointing outside it must not carry a copy out.
	outside := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(src, "evil/escape/pwned"), "x")

	err := ApplyOverlays(root, []Overlay{
		{Source: filepath.Join(src, "dir"), Dest: "/"},
		{Source: filepath.Join(src, "issue"), Dest: "/etc"},
		{Source: filepath.Join(src, "issue"), Dest: "/etc/issue.net"},
	})
	if err != nil {
		t.Fatalf("ApplyOverlays() = %v", err)
	}
	for p, want := range map[string]string{"etc/motd": "hello\n", "usr/bin/tool": "#!/bin/sh\n", "etc/issue": "strata\n", "etc/issue.net": "strata\n"} {
		if got := readString(t, filepath.Join(root, p)); got != want {
			t.Errorf("after ApplyOverlays, %s = %q, want %q", p, got, want)
		}
	}
	if st, err := os.Stat(filepath.Join(root, "usr/bin/tool")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("after ApplyOverlays, usr/bin/tool mode = %v (%v), want 0755", st.Mode(), err)
	}
	if got, err := os.Readlink(filepath.Join(root, "etc/motd.link")); err != nil || got != "motd" {
		t.Errorf("after ApplyOverlays, etc/motd.link -> %q (%v), want motd", got, err)
	}
	if err := ApplyOverlays(root, []Overlay{{Source: filepath.Join(src, "evil"), Dest: "/"}}); err == nil {
		t.Errorf("ApplyOverlays(through a symlink out of the tree) = nil, want an error")
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Errorf("ApplyOverlays wrote %d entries outside the tree", len(ents))
	}
}

func TestCheckOverlays(t *testing.T) {
	t.Parallel()
	m := &Manifest{Overlays: []Overlay{{Source: t.TempDir(), Dest: "/"}, {Source: "/nonexistent/overlay", Dest: "/"}}}
	err := CheckOverlays(m)
	if err == nil || !strings.Contains(err.Error(), "overlays[1].source") || !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("CheckOverlays() = %v, want an ErrInvalid naming overlays[1].source", err)
	}
}
