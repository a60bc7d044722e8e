package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSysroot writes a physical root with deployment os/abcd.0 and its boot link.
func fakeSysroot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	dep := filepath.Join(root, "ostree/deploy/os/deploy/abcd.0")
	for _, d := range []string{"usr", "etc", "var", "sysroot", "run", "dev", "proc", "sys"} {
		mustMkdir(t, filepath.Join(dep, d))
	}
	mustMkdir(t, filepath.Join(root, "ostree/deploy/os/var"))
	mustMkdir(t, filepath.Join(root, "ostree/boot.0.0/os/ffff"))
	mustMkdir(t, filepath.Join(root, "etc"))
	for link, target := range map[string]string{
		"ostree/boot.0":             "boot.0.0",
		"ostree/boot.0.0/os/ffff/0": "../../../deploy/os/deploy/abcd.0",
		"ostree/boot.0.0/os/ffff/1": "/etc",
	} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func mustMkdir(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func TestPrepareRootDryRun(t *testing.T) {
	t.Parallel()
	root := fakeSysroot(t)
	cmdline := "root=LABEL=sysroot rw ostree=/ostree/boot.0/os/ffff/0"
	out, errOut, code := inspRun(t, "prepare-root", "--dry-run", "--sysroot", root, "--cmdline", cmdline)
	if code != 0 {
		t.Fatalf("strata prepare-root --dry-run = exit %d, %s", code, errOut)
	}
	dep := filepath.Join(root, "ostree/deploy/os/deploy/abcd.0")
	want := "deployment abcd.0 (stateroot os)\n" +
		"bind " + dep + " /newroot\n" +
		"bind /newroot/usr /newroot/usr\n" +
		"remount-ro /newroot/usr\n" +
		"bind " + filepath.Join(root, "ostree/deploy/os/var") + " /newroot/var\n" +
		"create-file /run/ostree-booted\n" +
		"write-file /run/systemd/system/var.mount\n" +
		"move " + root + " /newroot/sysroot\n" +
		"move /run /newroot/run\n" +
		"exec /sbin/init\n"
	if out != want {
		t.Errorf("strata prepare-root --dry-run printed\n%s\nwant\n%s", out, want)
	}

	out, errOut, code = inspRun(t, "prepare-root", "--dry-run", "--sysroot", root, "--cmdline", cmdline+" init=/usr/lib/systemd/systemd", "--json")
	if code != 0 {
		t.Fatalf("strata prepare-root --dry-run --json = exit %d, %s", code, errOut)
	}
	var js prepareRootJSON
	if err := json.Unmarshal([]byte(out), &js); err != nil {
		t.Fatalf("decoding --json output %q: %v", out, err)
	}
	if js.Deployment != "abcd.0" || js.Stateroot != "os" || js.Root != "LABEL=sysroot" || js.RootFSType != "ext4" ||
		js.Init != "/usr/lib/systemd/systemd" || len(js.Steps) != 8 {
		t.Errorf("strata prepare-root --dry-run --json = %+v, want deployment abcd.0 of os, 8 steps, init systemd", js)
	}
}

func TestPrepareRootErrors(t *testing.T) {
	t.Parallel()
	root := fakeSysroot(t)
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"escaping boot link", []string{"--dry-run", "--sysroot", root, "--cmdline", "root=/dev/vda ostree=/ostree/boot.0/os/ffff/1"},
			exitInvalid, "cannot prepare root: ostree=/ostree/boot.0/os/ffff/1 resolves to /etc, not a deployment"},
		{"missing deployment", []string{"--dry-run", "--sysroot", root, "--cmdline", "root=/dev/vda ostree=/ostree/boot.0/os/ffff/2"},
			exitFailure, "/ostree/boot.0.0/os/ffff/2 does not exist"},
		{"no root=", []string{"--dry-run", "--sysroot", root, "--cmdline", "quiet"}, exitUsage, "no root="},
		{"not PID 1", nil, exitFailure, "cannot run prepare-root: not running as PID 1 of an initramfs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"prepare-root"}, tt.args...)
			_, errOut, code := inspRun(t, args...)
			if code != tt.wantCode || !strings.Contains(errOut, tt.wantErr) {
				t.Errorf("strata %v = exit %d, %q; want exit %d, %q", args, code, errOut, tt.wantCode, tt.wantErr)
			}
		})
	}
}
