package image

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestInstallUnits(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for range 2 { // idempotent
		if err := InstallUnits(root); err != nil {
			t.Fatalf("InstallUnits = %v", err)
		}
	}
	var got []string
	err := filepath.Walk(filepath.Join(root, UnitDir), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(filepath.Join(root, UnitDir), p)
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			if _, err := os.Stat(p); err != nil {
				t.Errorf("link %s -> %s is dangling", rel, target)
			}
			rel += " -> " + target
		}
		got = append(got, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"boot-complete.target.requires/strata-boot-complete.service -> ../strata-boot-complete.service",
		"multi-user.target.wants/strata-boot-complete.service -> ../strata-boot-complete.service",
		"multi-user.target.wants/strata-esp-sync.service -> ../strata-esp-sync.service",
		"multi-user.target.wants/strata-finalize.service -> ../strata-finalize.service",
		"strata-boot-complete.service",
		"strata-esp-sync.service",
		"strata-finalize.service",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("InstallUnits tree (-want +got):\n%s", diff)
	}
	for _, g := range maskedGenerators {
		if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system-generators", g)); err != nil || target != "/dev/null" {
			t.Errorf("generator %s: link to %q, %v; want it masked (-> /dev/null)", g, target, err)
		}
	}
	data, err := os.ReadFile(filepath.Join(root, UnitDir, "strata-finalize.service"))
	if err != nil || !strings.Contains(string(data), "ExecStop="+StrataBinary+" finalize") {
		t.Errorf("strata-finalize.service = %q, %v, want an ExecStop running strata finalize", data, err)
	}
}

func TestAddFstabLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"missing file", "", FstabESP + "\n"},
		{"appended", "# static\n/dev/vda2 / ext4 defaults 0 1", "# static\n/dev/vda2 / ext4 defaults 0 1\n" + FstabESP + "\n"},
		{"already mounted there", "UUID=1 /boot/efi vfat defaults 0 2\n", "UUID=1 /boot/efi vfat defaults 0 2\n"},
		{"commented line does not count", "#UUID=1 /boot/efi vfat defaults 0 2\n", "#UUID=1 /boot/efi vfat defaults 0 2\n" + FstabESP + "\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "fstab")
			if tt.in != "" {
				if err := os.WriteFile(p, []byte(tt.in), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := addFstabLine(p, FstabESP); err != nil {
				t.Fatal(err)
			}
			got, _ := os.ReadFile(p)
			if string(got) != tt.want {
				t.Errorf("addFstabLine(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
