//go:build root

package image_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/image"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// TestBuildErrors: bad input to Build is a clear error, an existing image
// at Out stays as it was, and nothing is left beside it.
func TestBuildErrors(t *testing.T) {
	requireImageTools(t)
	src, _ := fakeCommit(t)
	noKernel := commitFakeOS(t, src, "fakeos/x86_64/nokernel", sysroottest.FakeOS{Version: "2", NoKernel: true}, nil)

	// A file system too small for the image: 4 MiB of tmpfs.
	small := filepath.Join(t.TempDir(), "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", small, "tmpfs", 0, "size=4m"); err != nil {
		t.Fatalf("mounting a small tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(small, unix.MNT_DETACH) })

	tests := []struct {
		name string
		dir  string // where Out goes ("" = a fresh directory)
		opts image.Options
		want string
	}{
		{"unknown ref", "", image.Options{Ref: "fakeos/x86_64/nope"}, "fakeos/x86_64/nope"},
		{"commit without a kernel", "", image.Options{Ref: noKernel.String()}, "kernel"},
		{"missing systemd-boot", "", image.Options{Ref: "fakeos/x86_64/test", SystemdBoot: "/nonexistent/systemd-bootx64.efi"}, "systemd-boot-efi"},
		{"size too small", "", image.Options{Ref: "fakeos/x86_64/test", Size: 260 << 20}, "leaves"},
		{"file system full", small, image.Options{Ref: "fakeos/x86_64/test"}, "no space left on device"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := tt.dir
			if dir == "" {
				dir = t.TempDir()
			}
			out := filepath.Join(dir, "disk.img")
			const old = "the previous image\n"
			if err := os.WriteFile(out, []byte(old), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(out) })
			opts := tt.opts
			opts.Repo, opts.Out = src, out
			res, err := image.Build(context.Background(), opts)
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.want)) {
				t.Fatalf("Build = %+v, %v; want an error naming %q", res, err, tt.want)
			}
			t.Logf("Build: %v", err)
			if data, err := os.ReadFile(out); err != nil || string(data) != old {
				t.Errorf("%s after the failed build = %q, %v; want the previous image untouched", out, data, err)
			}
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(ents) != 1 {
				var names []string
				for _, e := range ents {
					names = append(names, e.Name())
				}
				t.Errorf("%s holds %v after the failed build, want only disk.img", dir, names)
			}
		})
	}
	var st unix.Statfs_t
	if err := unix.Statfs(small, &st); err == nil && st.Blocks != st.Bfree {
		out, _ := exec.Command("du", "-a", small).CombinedOutput()
		t.Errorf("the full file system keeps %d blocks in use after the failed build:\n%s", st.Blocks-st.Bfree, out)
	}
}
