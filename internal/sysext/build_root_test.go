//go:build root

package sysext

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/testutil"
)

// TestBuildMount mounts the images Build writes through a loop device, as
// systemd-sysext does, and reads the tree back.
func TestBuildMount(t *testing.T) {
	testutil.RequireRoot(t)
	losetup := testutil.RequireTool(t, "losetup", "mount")
	for _, f := range []Format{FormatEROFS, FormatSquashFS} {
		t.Run(string(f), func(t *testing.T) {
			img := "testdata/squashfs/hello.raw" // mksquashfs's, of helloTree
			if f == FormatEROFS {
				img = buildImage(t, helloTree(t), "hello", f)
			}
			mnt := t.TempDir()
			out, err := exec.Command(losetup, "--find", "--show", "--read-only", img).Output()
			if err != nil {
				t.Fatalf("losetup: %v", err)
			}
			dev := strings.TrimSpace(string(out))
			t.Cleanup(func() { exec.Command(losetup, "-d", dev).Run() })
			if err := unix.Mount(dev, mnt, string(f), unix.MS_RDONLY|unix.MS_NODEV|unix.MS_NOSUID, ""); err != nil {
				t.Fatalf("mounting %s (%s): %v", img, f, err)
			}
			t.Cleanup(func() { unix.Unmount(mnt, 0) })
			checkUnpacked(t, mnt)
			if fi, err := os.Lstat(filepath.Join(mnt, "usr/bin/hello")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 0 {
				t.Errorf("usr/bin/hello owner: %v, %v; want root", fi, err)
			}
		})
	}
}
