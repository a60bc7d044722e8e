//go:build peer

package sysext

import (
	"os"
	"os/exec"
	"path/filepath"
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
	// squashfs images come from mksquashfs; Inspect reads them.
	t.Run("mksquashfs", func(t *testing.T) {
		t.Parallel()
		mksquashfs := testutil.RequireTool(t, "mksquashfs", "squashfs-tools")
		withRel := t.TempDir()
		if out, err := exec.Command("cp", "-a", dir+"/.", withRel).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v: %s", err, out)
		}
		os.MkdirAll(filepath.Join(withRel, ReleaseDir), 0o755)
		os.WriteFile(filepath.Join(withRel, ReleasePath("hello")), []byte("ID=debian\nSYSEXT_LEVEL=1.0\n"), 0o644)
		img := filepath.Join(t.TempDir(), "hello.raw")
		if out, err := exec.Command(mksquashfs, withRel, img, "-noappend", "-quiet", "-all-root").CombinedOutput(); err != nil {
			t.Fatalf("mksquashfs: %v: %s", err, out)
		}
		got, err := Inspect(img)
		if err != nil || got.Format != FormatSquashFS || got.Release["SYSEXT_LEVEL"] != "1.0" || got.Entries != 13 {
			t.Errorf("Inspect(mksquashfs image) = %+v, %v; want squashfs, SYSEXT_LEVEL 1.0, 13 entries", got, err)
		}
		dest := filepath.Join(t.TempDir(), "x")
		if out, err := exec.Command(unsquashfs, "-no-xattrs", "-d", dest, img).CombinedOutput(); err != nil {
			t.Fatalf("unsquashfs: %v: %s", err, out)
		}
	})
}
