package sysroot

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, c := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindKernel(t *testing.T) {
	t.Parallel()
	const mod = "usr/lib/modules/5.10.0-fake/"
	tests := []struct {
		name       string
		files      map[string]string
		wantCsum   string // full, or "prefix…suffix"
		wantInitrd string
		wantDT     string
		wantErr    error
	}{
		{"spec vector kernel+initramfs.img",
			map[string]string{mod + "vmlinuz": "fake kernel v1\n", mod + "initramfs.img": "fake initramfs\n"},
			"88e5fa6e0596b2c2d4983d41f74ca9af221155fdd7270654a9aa81a093d76b18", "initramfs.img", "", nil},
		{"initramfs without .img", map[string]string{mod + "vmlinuz": "fake kernel v1\n", mod + "initramfs": "fake initramfs\n"},
			"88e5fa6e0596b2c2d4983d41f74ca9af221155fdd7270654a9aa81a093d76b18", "initramfs", "", nil},
		{"kernel only", map[string]string{mod + "vmlinuz": "k"},
			"8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a", "", "", nil},
		{"devicetree file is hashed last", map[string]string{mod + "vmlinuz": "k", mod + "devicetree": "dt"},
			"", "", "devicetree", nil},
		{"dtb directory", map[string]string{mod + "vmlinuz": "k", mod + "dtb/b/x.dtb": "1", mod + "dtb/a.dtb": "2"},
			"", "", "dtb", nil},
		{"module dir without vmlinuz is skipped", map[string]string{"usr/lib/modules/other/modules.dep": "", mod + "vmlinuz": "k"},
			"8254c329a92850f6d539dd376f4816ee2764517da5e0235514af433164480d7a", "", "", nil},
		{"no modules", map[string]string{"usr/bin/x": ""}, "", "", "", errdefs.ErrNotFound},
		{"no vmlinuz", map[string]string{"usr/lib/modules/x/modules.dep": ""}, "", "", "", errdefs.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, tt.files)
			k, err := findKernel(root)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("findKernel() error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("findKernel(): %v", err)
			}
			if pre, suf, ok := strings.Cut(tt.wantCsum, "…"); ok {
				if !strings.HasPrefix(k.bootcsum, pre) || !strings.HasSuffix(k.bootcsum, suf) {
					t.Errorf("findKernel().bootcsum = %s, want %s", k.bootcsum, tt.wantCsum)
				}
			} else if tt.wantCsum != "" && k.bootcsum != tt.wantCsum {
				t.Errorf("findKernel().bootcsum = %s, want %s", k.bootcsum, tt.wantCsum)
			}
			if k.initramfs != tt.wantInitrd || k.devicetree != tt.wantDT || k.kver == "" {
				t.Errorf("findKernel() = initramfs %q devicetree %q kver %q, want %q %q", k.initramfs, k.devicetree, k.kver, tt.wantInitrd, tt.wantDT)
			}
		})
	}
}

func TestParseOSRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{"double quoted", "NAME=x\nPRETTY_NAME=\"Fake OS\"\n", "Fake OS", false},
		{"single quoted", "PRETTY_NAME='Debian GNU/Linux 12 (bookworm)'", "Debian GNU/Linux 12 (bookworm)", false},
		{"escapes", `PRETTY_NAME="a \"b\" \$c"`, `a "b" $c`, false},
		{"unquoted backslash", `PRETTY_NAME=a\ b`, "a b", false},
		{"ID fallback", "ID=fakeos\n# PRETTY_NAME=no\n", "fakeos", false},
		{"unterminated quote is skipped", "PRETTY_NAME=\"broken\nID=x", "x", false},
		{"nothing", "NAME=x\n", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, map[string]string{"usr/lib/os-release": tt.in})
			got, err := osReleaseTitle(root)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("osReleaseTitle(%q) = %q, %v, want %q (error %v)", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
