package image

import (
	"os"
	"path/filepath"
	"testing"
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
