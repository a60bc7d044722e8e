//go:build root

package provision_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
	"github.com/strata-os/strata/internal/testutil"
)

// loopDevice attaches a new sparse file of size bytes to a loop device.
func loopDevice(t *testing.T, size int64) string {
	t.Helper()
	losetup := testutil.RequireTool(t, "losetup", "mount")
	img := filepath.Join(t.TempDir(), "disk.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(losetup, "--find", "--show", "--partscan", img).Output()
	if err != nil {
		t.Fatalf("losetup: %v", err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
	return dev
}

// TestApplyFilesystems formats a second disk as ext4 and gives it a mount unit, so that
// /var/lib/containers can live there, and refuses to reformat it as something else.
func TestApplyFilesystems(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	blkid := testutil.RequireTool(t, "blkid", "util-linux")
	dev := loopDevice(t, 64<<20)
	root := newRoot(t)
	apply := func(format string) error {
		cfg, rpt, err := provconfig.ParseJSON([]byte(`{"ignition":{"version":"3.3.0"},"storage":{"filesystems":[
 {"device":"` + dev + `","format":"` + format + `","label":"containers","path":"/var/lib/containers","mountOptions":["noatime"]}]}}`))
		if err != nil {
			t.Fatalf("ParseJSON: %v\n%s", err, rpt)
		}
		_, err = provision.Apply(context.Background(), root, cfg, provision.Options{Disks: provision.NewDiskFormatter(provision.ExecRun)})
		return err
	}
	if err := apply("ext4"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", dev).Output()
	if err != nil || !strings.Contains(string(out), "TYPE=ext4") || !strings.Contains(string(out), "LABEL=containers") {
		t.Errorf("blkid %s = %s, %v; want ext4 labelled containers", dev, out, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/var-lib-containers.mount"))
	for _, want := range []string{"What=" + dev + "\n", "Where=/var/lib/containers\n", "Type=ext4\n", "Options=noatime\n", "RequiredBy=local-fs.target\n"} {
		if err != nil || !strings.Contains(string(unit), want) {
			t.Errorf("var-lib-containers.mount = %q, %v; want %q in it", unit, err, want)
		}
	}
	if target, err := os.Readlink(filepath.Join(root, "etc/systemd/system/local-fs.target.requires/var-lib-containers.mount")); err != nil || target != "/etc/systemd/system/var-lib-containers.mount" {
		t.Errorf("local-fs.target.requires link = %q, %v", target, err)
	}
	// A second run reuses the filesystem (same type and label); another type is refused.
	if err := apply("ext4"); err != nil {
		t.Errorf("second apply: %v", err)
	}
	if err := apply("vfat"); err == nil || !strings.Contains(err.Error(), "the device holds ext4") {
		t.Errorf("apply vfat over ext4 = %v, want a refusal naming ext4", err)
	}
	// Without a formatter, the config is refused before anything happens.
	cfg, _, _ := provconfig.ParseJSON([]byte(`{"ignition":{"version":"3.3.0"},"storage":{"filesystems":[{"device":"` + dev + `","format":"ext4","path":"/srv"}]}}`))
	if _, err := provision.Apply(context.Background(), root, cfg, provision.Options{}); err == nil || !strings.Contains(err.Error(), "$.storage.filesystems") {
		t.Errorf("Apply without a formatter = %v, want a refusal naming $.storage.filesystems", err)
	}
}
