//go:build peer

package sysext

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestBuildOracles has erofs-utils and squashfs-tools read the images
// Build writes: fsck.erofs extracts the EROFS image, unsquashfs unpacks
// the squashfs one, and both trees hold the files, links, modes and the
// extension-release file.
func TestBuildOracles(t *testing.T) {
	t.Parallel()
	fsck := testutil.RequireTool(t, "fsck.erofs", "erofs-utils")
	unsquashfs := testutil.RequireTool(t, "unsquashfs", "squashfs-tools")
	dir := helloTree(t)
	for _, tc := range []struct {
		format Format
		unpack func(img, dest string) *exec.Cmd
	}{
		{FormatEROFS, func(img, dest string) *exec.Cmd { return exec.Command(fsck, "--extract="+dest, img) }},
		{FormatSquashFS, func(img, dest string) *exec.Cmd { return exec.Command(unsquashfs, "-no-xattrs", "-d", dest, img) }},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			t.Parallel()
			img := buildImage(t, dir, "hello", tc.format)
			dest := filepath.Join(t.TempDir(), "x")
			if out, err := tc.unpack(img, dest).CombinedOutput(); err != nil {
				t.Fatalf("%s reading the image: %v\n%s", tc.format, err, out)
			}
			checkUnpacked(t, dest)
		})
	}
	t.Run("unsquashfs -l", func(t *testing.T) {
		t.Parallel()
		out, err := exec.Command(unsquashfs, "-lls", buildImage(t, dir, "hello", FormatSquashFS)).CombinedOutput()
		if err != nil {
			t.Fatalf("unsquashfs -lls: %v\n%s", err, out)
		}
		for _, want := range []string{"-rwxr-xr-x root/root", "squashfs-root/usr/bin/hello", "squashfs-root/usr/bin/hi -> hello", "-rw-r----- root/root"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("unsquashfs -lls lacks %q:\n%s", want, out)
			}
		}
	})
}

// checkUnpacked checks a tree unpacked from an image of helloTree.
func checkUnpacked(t *testing.T, dest string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dest, "usr/bin/hello"))
	if err != nil || !strings.Contains(string(b), "hello from an extension") {
		t.Errorf("usr/bin/hello = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "usr/bin/hello")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("usr/bin/hello mode = %v, %v; want 0755", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "usr/share/hello/README")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("README mode = %v, %v; want 0640", fi.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "usr/bin/hi")); err != nil || l != "hello" {
		t.Errorf("usr/bin/hi -> %q, %v; want hello", l, err)
	}
	rel, err := os.ReadFile(filepath.Join(dest, ReleasePath("hello")))
	if err != nil || !strings.Contains(string(rel), `ID="debian"`) || !strings.Contains(string(rel), `VERSION_ID="12"`) {
		t.Errorf("extension-release = %q, %v", rel, err)
	}
	if _, err := os.Stat(filepath.Join(dest, "opt/hello/data")); err != nil {
		t.Errorf("opt/hello/data: %v", err)
	}
}
