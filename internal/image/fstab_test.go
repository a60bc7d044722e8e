package image

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

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
