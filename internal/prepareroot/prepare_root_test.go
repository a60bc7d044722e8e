//go:build root

package prepareroot

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestPrepareRootMounts runs the real mount sequence of prepare-root (all but
// the API filesystems and switch_root) on a tmpfs physical root with one
// deployment, in a private mount namespace.
func TestPrepareRootMounts(t *testing.T) {
	testutil.RequireRoot(t)
	base := t.TempDir()
	testutil.InMountNamespace(t, func() {
		if err := prepareAndCheck(t, base); err != nil {
			t.Error(err)
		}
	})
}

func prepareAndCheck(t *testing.T, base string) error {
	// The initramfs: a tmpfs with /sysroot, /newroot, /run and a few files.
	if err := unix.Mount("tmpfs", base, "tmpfs", 0, "mode=0755"); err != nil {
		return err
	}
	l := Layout{Sysroot: filepath.Join(base, "sysroot"), NewRoot: filepath.Join(base, "newroot"), Run: filepath.Join(base, "run")}
	for _, d := range []string{l.Sysroot, l.NewRoot, l.Run, filepath.Join(base, "etc")} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	for _, f := range []string{"init", "etc/initrd-modules"} {
		if err := os.WriteFile(filepath.Join(base, f), []byte("x"), 0o644); err != nil {
			return err
		}
	}
	if err := unix.Mount("tmpfs", l.Run, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
		return err
	}
	// The physical root, as boot mounts root= on /sysroot.
	if err := unix.Mount("tmpfs", l.Sysroot, "tmpfs", 0, "mode=0755,size=64m"); err != nil {
		return err
	}
	var physical unix.Stat_t
	if err := unix.Stat(l.Sysroot, &physical); err != nil {
		return err
	}
	if err := writeLayout(l.Sysroot); err != nil {
		return err
	}

	cfg, err := ParseCmdline("root=/dev/vda rw ostree=/ostree/boot.1/os/" + bootCsum + "/0")
	if err != nil {
		return err
	}
	d, steps, err := Plan(l, cfg)
	if err != nil {
		return err
	}
	if err := Apply(UnixMounter{}, steps); err != nil {
		return err
	}
	if d.Name != testDeploy {
		t.Errorf("Plan deployment = %s, want %s", d.Name, testDeploy)
	}

	nr := func(p string) string { return filepath.Join(l.NewRoot, p) }
	// /usr is read-only.
	err = os.WriteFile(nr("usr/new"), nil, 0o644)
	if !errors.Is(err, unix.EROFS) {
		t.Errorf("writing newroot/usr/new = %v, want EROFS", err)
	}
	if b, err := os.ReadFile(nr("usr/lib/os-release")); err != nil || string(b) != "ID=strata\n" {
		t.Errorf("newroot/usr/lib/os-release = %q, %v; want the deployment's", b, err)
	}
	// /etc is writable and is the deployment's own etc.
	if err := os.WriteFile(nr("etc/hostname"), []byte("node\n"), 0o644); err != nil {
		t.Errorf("writing newroot/etc/hostname = %v, want a writable /etc", err)
	}
	deployEtc := nr("sysroot/ostree/deploy/os/deploy/" + testDeploy + "/etc/hostname")
	if b, err := os.ReadFile(deployEtc); err != nil || string(b) != "node\n" {
		t.Errorf("%s = %q, %v; want what was written to newroot/etc", deployEtc, b, err)
	}
	// /var is the stateroot's shared var.
	if err := os.WriteFile(nr("var/lib/marker"), []byte("v"), 0o644); err != nil {
		t.Errorf("writing newroot/var/lib/marker = %v", err)
	}
	if _, err := os.Stat(nr("sysroot/ostree/deploy/os/var/lib/marker")); err != nil {
		t.Errorf("newroot/var/lib/marker is not in the stateroot var: %v", err)
	}
	// /sysroot is the physical root, moved away from the initramfs.
	var st unix.Stat_t
	if err := unix.Stat(nr("sysroot"), &st); err != nil || st.Dev != physical.Dev || st.Ino != physical.Ino {
		t.Errorf("newroot/sysroot = dev %d ino %d (%v), want the physical root dev %d ino %d", st.Dev, st.Ino, err, physical.Dev, physical.Ino)
	}
	if _, err := os.Stat(filepath.Join(l.Sysroot, "ostree")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("initramfs /sysroot still shows the physical root (%v), want it moved", err)
	}
	// /run moved in, with ostree-booted.
	if _, err := os.Stat(nr("run/ostree-booted")); err != nil {
		t.Errorf("newroot/run/ostree-booted: %v", err)
	}
	var sfs unix.Statfs_t
	if err := unix.Statfs(nr("run"), &sfs); err != nil || sfs.Type != unix.TMPFS_MAGIC || sfs.Flags&unix.ST_NOSUID == 0 {
		t.Errorf("newroot/run = type %#x flags %#x (%v), want the initramfs nosuid tmpfs", sfs.Type, sfs.Flags, err)
	}
	if err := unix.Statfs(nr("usr"), &sfs); err != nil || sfs.Flags&unix.ST_RDONLY == 0 {
		t.Errorf("newroot/usr flags %#x (%v), want ST_RDONLY", sfs.Flags, err)
	}
	if err := unix.Statfs(nr("etc"), &sfs); err != nil || sfs.Flags&unix.ST_RDONLY != 0 {
		t.Errorf("newroot/etc flags %#x (%v), want writable", sfs.Flags, err)
	}

	// Deleting the initramfs stops at mount points: the new root is intact.
	if err := removeTree(base); err != nil {
		t.Errorf("removeTree(initramfs) = %v", err)
	}
	for _, gone := range []string{"init", "etc/initrd-modules", "etc", "sysroot", "run"} {
		if _, err := os.Lstat(filepath.Join(base, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("removeTree left %s (%v)", gone, err)
		}
	}
	if _, err := os.Stat(nr("usr/lib/os-release")); err != nil {
		t.Errorf("removeTree crossed into the new root: %v", err)
	}
	if _, err := os.Stat(nr("sysroot/ostree/deploy/os/var/lib/marker")); err != nil {
		t.Errorf("removeTree crossed into the physical root: %v", err)
	}
	return nil
}

const bootCsum = "88e5fa6e"

// writeLayout writes one deployment the way ostree lays it out (docs/formats/sysroot.md). It
// runs off the test goroutine, so it returns errors instead of calling t.Fatal.
func writeLayout(root string) error {
	dep := filepath.Join(root, "ostree/deploy/os/deploy", testDeploy)
	var errs []error
	for _, d := range []string{"usr/lib", "etc", "var", "sysroot", "run", "dev", "proc", "sys", "boot"} {
		errs = append(errs, os.MkdirAll(filepath.Join(dep, d), 0o755))
	}
	errs = append(errs,
		os.MkdirAll(filepath.Join(root, "ostree/deploy/os/var/lib"), 0o755),
		os.MkdirAll(filepath.Join(root, "ostree/boot.1.0/os", bootCsum), 0o755),
		os.Symlink("boot.1.0", filepath.Join(root, "ostree/boot.1")),
		os.Symlink("../../../deploy/os/deploy/"+testDeploy, filepath.Join(root, "ostree/boot.1.0/os", bootCsum, "0")),
		os.WriteFile(filepath.Join(dep, "usr/lib/os-release"), []byte("ID=strata\n"), 0o644),
	)
	return errors.Join(errs...)
}
