//go:build root && peer

package prepareroot

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
)

// TestFindRootDeviceLoop finds an ext4 loop device by LABEL, UUID and node
// through the kernel's /sys/class/block and /dev, as the initramfs does. The
// filesystem covers the whole device: the test host's kernel may lack
// CONFIG_EFI_PARTITION (this one does), so PARTLABEL= and PARTUUID= on real
// partitions are left to the VM boot tests; TestFindRootDevice covers their
// sysfs walk on a fake tree and TestReadGPTPeer the table format.
func TestFindRootDeviceLoop(t *testing.T) {
	testutil.RequireRoot(t)
	mkfs := testutil.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	losetup := testutil.RequireTool(t, "losetup", "mount")

	// Names unique to this run: other loop devices may be attached.
	now := time.Now().UnixNano()
	label := fmt.Sprintf("st%d", now%1e9)
	fsUUID := fmt.Sprintf("6c1e2d4a-9b01-4c3e-8f11-%012d", now%1e12)
	img := filepath.Join(t.TempDir(), "fs.img")
	if out, err := exec.Command(mkfs, "-q", "-F", "-L", label, "-U", fsUUID, img, "16M").CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v\n%s", err, out)
	}
	out, err := exec.Command(losetup, "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", loop).Run() })

	cfg := Config{Timeout: 5 * time.Second}
	for _, spec := range []string{"LABEL=" + label, "UUID=" + fsUUID, "UUID=" + strings.ToUpper(fsUUID), "/dev/disk/by-label/" + label, loop} {
		cfg.Root = spec
		got, err := waitRoot(DefaultBlockDevices, cfg)
		if err != nil || got != loop {
			t.Errorf("waitRoot(root=%s) = %q, %v; want %s", spec, got, err, loop)
		}
	}
	cfg.Root, cfg.Timeout = "LABEL=no-"+label, 0
	if got, err := waitRoot(DefaultBlockDevices, cfg); err == nil || !strings.Contains(err.Error(), "did not appear within 0s") {
		t.Errorf("waitRoot(root=%s) = %q, %v; want a timeout", cfg.Root, got, err)
	}
}
