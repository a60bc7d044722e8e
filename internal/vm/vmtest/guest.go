package vmtest

import (
	_ "embed"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// The guest side of the control port (internal/vm, Machine.Send and Exec), for test images:
// install ControlScript as /usr/local/sbin/strata-vm-control (0755) and ControlUnit as
// /etc/systemd/system/strata-vm-control.service, enabled for multi-user.target.
var (
	//go:embed guest/strata-vm-control
	ControlScript []byte
	//go:embed guest/strata-vm-control.service
	ControlUnit []byte
)

// Busybox returns a static busybox from Debian's busybox-static package, fetched once into the
// cache: a shell and coreutils for initramfs tests of guest scripts.
func Busybox(t testing.TB) string {
	t.Helper()
	testutil.RequireTool(t, "apt-get", "apt")
	testutil.RequireTool(t, "dpkg-deb", "dpkg")
	cache := CacheDir(t)
	dir := filepath.Join(cache, "busybox-static")
	bin := filepath.Join(dir, "busybox")
	lockCache(t, cache, "busybox-static", func() error {
		if _, err := os.Stat(bin); err == nil {
			return nil
		}
		deb, err := aptDownload("busybox-static", dir)
		if err != nil {
			return err
		}
		data, err := debFile(deb, "./bin/busybox")
		if err != nil {
			return err
		}
		return writeAtomic(bin, data, 0o755)
	})
	return bin
}
