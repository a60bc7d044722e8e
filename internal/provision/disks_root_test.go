//go:build root

package provision_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
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

// chrootTree returns a tree that stands for a deployment: the host's /usr bound read-only, the
// usr-merged links and empty dev, proc and sys mount points.
func chrootTree(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"usr", "dev", "proc", "sys", "etc", "tmp"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"bin", "sbin", "lib", "lib64"} {
		if err := os.Symlink("usr/"+l, filepath.Join(root, l)); err != nil {
			t.Fatal(err)
		}
	}
	usr := filepath.Join(root, "usr")
	if err := unix.Mount("/usr", usr, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(usr, unix.MNT_DETACH) })
	return root
}

// TestChrootDisks partitions and formats a disk as a first boot does, with the programs of a
// deployment's tree run chrooted there, and leaves no mount behind in that tree.
func TestChrootDisks(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "sgdisk", "gdisk")
	testutil.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	blkid := testutil.RequireTool(t, "blkid", "util-linux")
	dev := loopDevice(t, 64<<20)
	tree := chrootTree(t)
	cfg, rpt, err := provconfig.ParseJSON([]byte(`{"ignition":{"version":"3.4.0"},"storage":{
 "disks":[{"device":"` + dev + `","wipeTable":true,"partitions":[{"number":1,"label":"containers","sizeMiB":32}]}],
 "filesystems":[{"device":"` + dev + `p1","format":"ext4","label":"ctr","path":"/var/lib/containers"}]}}`))
	if err != nil {
		t.Fatalf("ParseJSON: %v\n%s", err, rpt)
	}
	if err := (provision.ChrootDisks{Root: tree, DeviceWait: 5 * time.Second}).Format(context.Background(), cfg.Storage); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", dev+"p1").Output()
	if err != nil || !strings.Contains(string(out), "TYPE=ext4") || !strings.Contains(string(out), "LABEL=ctr") ||
		!strings.Contains(string(out), "PART_ENTRY_NAME=containers") {
		t.Errorf("blkid %sp1 = %s, %v; want an ext4 labelled ctr in a partition named containers", dev, out, err)
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"dev", "proc", "sys"} {
		if strings.Contains(string(mi), " "+filepath.Join(tree, d)+" ") {
			t.Errorf("%s is still mounted after Format", filepath.Join(tree, d))
		}
	}
	// A device that never appears is waited for, then named.
	cfg.Storage.Disks = nil
	cfg.Storage.Filesystems[0].Device = dev + "p9"
	err = (provision.ChrootDisks{Root: tree, DeviceWait: 300 * time.Millisecond}).Format(context.Background(), cfg.Storage)
	if err == nil || !strings.Contains(err.Error(), dev+"p9 did not appear") {
		t.Errorf("Format with a missing device = %v, want it named", err)
	}
	// A tree without the program says which one it lacks.
	empty := t.TempDir()
	for _, d := range []string{"dev", "proc", "sys"} {
		os.Mkdir(filepath.Join(empty, d), 0o755)
	}
	cfg.Storage.Filesystems[0].Device = dev + "p1"
	cfg.Storage.Filesystems[0].WipeFilesystem = &[]bool{true}[0]
	err = (provision.ChrootDisks{Root: empty}).Format(context.Background(), cfg.Storage)
	if err == nil || !strings.Contains(err.Error(), "blkid is not in the deployment's") {
		t.Errorf("Format in a tree without blkid = %v, want the program named", err)
	}
}

// TestChrootRunResolvesInTree runs a program the tree reaches through an absolute symlink to a
// file only the tree holds, and refuses one whose absolute symlink names a file only the host
// holds: the lookup resolves as the chrooted run will, within the tree.
func TestChrootRunResolvesInTree(t *testing.T) {
	testutil.RequireRoot(t)
	tree := chrootTree(t)
	// The tree's /sbin is its own directory here, so that the test's links live in the tree.
	sbin := filepath.Join(tree, "sbin")
	if err := os.Remove(sbin); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(sbin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(tree, "opt/probe"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "opt/probe/tool"), []byte("#!/bin/sh\necho inside the tree \"$@\"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/opt/probe/tool"); err == nil {
		t.Fatal("/opt/probe/tool exists on the host; the test needs it only in the tree")
	}
	if err := os.Symlink("/opt/probe/tool", filepath.Join(sbin, "strata-probe")); err != nil {
		t.Fatal(err)
	}
	out, err := provision.ChrootRun(tree)(context.Background(), "strata-probe", "ok")
	if err != nil || string(out) != "inside the tree ok\n" {
		t.Errorf("ChrootRun strata-probe = %q, %v; want the tree's program run", out, err)
	}
	// A link to a program that only the host has is not found in the tree.
	host := filepath.Join(t.TempDir(), "host-tool")
	if err := os.WriteFile(host, []byte("#!/bin/sh\necho on the host\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(host, filepath.Join(sbin, "strata-escape")); err != nil {
		t.Fatal(err)
	}
	out, err = provision.ChrootRun(tree)(context.Background(), "strata-escape")
	if !errors.Is(err, errdefs.ErrNotFound) || !strings.Contains(err.Error(), "strata-escape is not in the deployment's") {
		t.Errorf("ChrootRun strata-escape = %q, %v; want ErrNotFound naming it", out, err)
	}
}

// TestChrootDisksSymlinkedMountPoint refuses a tree whose /dev is a symlink: binding the
// initramfs's /dev there would mount it wherever the link points, outside the tree.
func TestChrootDisksSymlinkedMountPoint(t *testing.T) {
	testutil.RequireRoot(t)
	tree, outside := t.TempDir(), t.TempDir()
	for _, d := range []string{"proc", "sys"} {
		if err := os.Mkdir(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(outside, filepath.Join(tree, "dev")); err != nil {
		t.Fatal(err)
	}
	var mounted []string
	var err error
	// In a namespace of its own: a mount that went wrong stays out of the host's table.
	testutil.InMountNamespace(t, func() {
		err = provision.ChrootDisks{Root: tree}.Format(context.Background(), types.Storage{})
		mi, _ := os.ReadFile("/proc/thread-self/mountinfo")
		for _, l := range strings.Split(string(mi), "\n") {
			if strings.Contains(l, " "+outside+" ") {
				mounted = append(mounted, l)
			}
		}
	})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "/dev is not a directory") {
		t.Errorf("Format in a tree whose /dev is a symlink = %v, want ErrInvalid naming /dev", err)
	}
	if len(mounted) > 0 {
		t.Errorf("mounted outside the tree: %q", mounted)
	}
}
