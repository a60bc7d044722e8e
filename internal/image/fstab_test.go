package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

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

// TestAddFstabLineRefusesSymlink: the deployment's etc/fstab is a symlink
// to a build-host file only root may read. Followed, its content went into
// the image's fstab.
func TestAddFstabLineRefusesSymlink(t *testing.T) {
	t.Parallel()
	const secret = "build host secret\n"
	host := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(host, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	fstab := filepath.Join(t.TempDir(), "fstab")
	if err := os.Symlink(host, fstab); err != nil {
		t.Fatal(err)
	}
	if err := addFstabLine(fstab, FstabESP); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("addFstabLine(symlink to a host file) = %v, want ErrInvalid", err)
	}
	if b, _ := os.ReadFile(host); string(b) != secret {
		t.Errorf("host file changed to %q", b)
	}
	if fi, err := os.Lstat(fstab); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		b, _ := os.ReadFile(fstab)
		if strings.Contains(string(b), secret) {
			t.Errorf("the image's fstab holds the host file: %q", b)
		}
		t.Errorf("the image's fstab is no longer the commit's symlink (%v)", err)
	}
}
