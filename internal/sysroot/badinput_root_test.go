//go:build root

package sysroot_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// Bad input beyond deploy_root_test.go's TestDeployBadInputChangesNothing:
// full filesystems and sysroots of the wrong layout. Each must give a
// clear error, change nothing, and leave the old default bootable.

// mountTmpfs mounts a tmpfs with options on dir until the test ends.
func mountTmpfs(t *testing.T, dir, options string) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, options); err != nil {
		t.Fatalf("mounting a tmpfs (%s) on %s: %v", options, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
}

// mountLoopExt4 makes an ext4 filesystem of sizeMiB in an image file,
// attaches it to a loop device and mounts it on dir; t.Cleanup unmounts
// it and detaches the device.
func mountLoopExt4(t *testing.T, dir string, sizeMiB int64) {
	t.Helper()
	mkfs := testutil.RequireTool(t, "mkfs.ext4", "e2fsprogs")
	losetup := testutil.RequireTool(t, "losetup", "mount")
	img := filepath.Join(t.TempDir(), "fs.img")
	f, err := os.Create(img)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(sizeMiB << 20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	// -m 0: no blocks reserved for root, so that "full" is full for the test too.
	if out, err := exec.Command(mkfs, "-q", "-F", "-m", "0", img).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 %s: %v\n%s", img, err, out)
	}
	out, err := exec.Command(losetup, "--find", "--show", img).Output()
	if err != nil {
		t.Fatalf("losetup --find --show %s: %v", img, err)
	}
	dev := strings.TrimSpace(string(out))
	t.Cleanup(func() {
		if out, err := exec.Command(losetup, "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", dev, err, out)
		}
	})
	if err := unix.Mount(dev, dir, "ext4", 0, ""); err != nil {
		t.Fatalf("mounting %s on %s: %v", dev, dir, err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
}

// fillFS leaves about leave bytes free on the filesystem of dir, with a
// file in dir that the returned function removes.
func fillFS(t *testing.T, dir string, leave int64) (free func()) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	avail := int64(st.Bavail) * st.Bsize
	if avail <= leave {
		t.Fatalf("%s has %d bytes free, want more than %d", dir, avail, leave)
	}
	p := filepath.Join(dir, "filler")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), 0, 0, avail-leave); err != nil {
		t.Fatalf("fallocate %s: %v", p, err)
	}
	return func() {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

func mustSnapshot(t *testing.T, s string) []string {
	t.Helper()
	snap, err := sysroottest.Snapshot(s)
	if err != nil {
		t.Fatalf("Snapshot(%s): %v", s, err)
	}
	return snap
}

// checkUnchanged checks that s is byte for byte what before was, that a
// boot starts want with its complete kernel and initramfs, that Cleanup
// leaves no leftovers, and that the repository passes fsck.
func checkUnchanged(t *testing.T, s string, sr *sysroot.Sysroot, before []string, want sysroottest.View) {
	t.Helper()
	if diff := cmp.Diff(before, mustSnapshot(t, s)); diff != "" {
		t.Errorf("the sysroot changed (-before +after):\n%s", diff)
	}
	v := booted(t, s)
	if v != want {
		t.Errorf("BootedView = %+v, want the old default %+v", v, want)
	}
	if err := sysroottest.KernelComplete(s, v); err != nil {
		t.Errorf("KernelComplete: %v", err)
	}
	if _, err := sr.Cleanup(context.Background()); err != nil {
		t.Fatalf("Cleanup after the failure: %v", err)
	}
	if left, err := sysroottest.Leftovers(s); err != nil || len(left) > 0 {
		t.Errorf("Leftovers after Cleanup = %q, %v; want none", left, err)
	}
	rep, err := repo.Fsck(context.Background(), sr.Repo(), repo.FsckOptions{Workers: 1})
	if err != nil || !rep.OK() {
		t.Errorf("Fsck = %+v, %v; want clean", rep, err)
	}
}

// TestDeployFullBoot: /boot has room for v1 but not for v2's kernel and
// initramfs. The deploy fails with ENOSPC naming the file it was
// writing, and the boot configuration stays byte for byte as it was.
func TestDeployFullBoot(t *testing.T) {
	s, sr := newSysroot(t)
	mountTmpfs(t, filepath.Join(s, "boot"), "size=256k,mode=0755")
	ctx := context.Background()
	sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"rw"}}); err != nil {
		t.Fatalf("Deploy(v1): %v", err)
	}
	big := strings.Repeat("k", 200<<10)
	c2 := sysroottest.FakeOS{Version: "2", Kernel: big, Initramfs: big}.Commit(t, sr.Repo(), "fakeos/stable")
	before, view := mustSnapshot(t, s), booted(t, s)

	_, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Deploy(v2) on a full /boot = %v, want ENOSPC", err)
	}
	if !strings.Contains(err.Error(), filepath.Join(s, "boot/ostree/fakeos-")) || !strings.Contains(err.Error(), c2.String()) {
		t.Errorf("Deploy(v2) error %q does not name the boot file and the deployment it was writing", err)
	}
	t.Logf("Deploy(v2) on a full /boot: %v", err)
	checkUnchanged(t, s, sr, before, view)
}

// TestDeployFullRoot: the sysroot's filesystem fills up while v2 is
// checked out. The deploy fails with ENOSPC naming the deployment,
// nothing changes, and once there is room again the same deploy
// succeeds.
func TestDeployFullRoot(t *testing.T) {
	testutil.RequireRoot(t)
	fsdir := filepath.Join(t.TempDir(), "fs")
	if err := os.Mkdir(fsdir, 0o755); err != nil {
		t.Fatal(err)
	}
	mountLoopExt4(t, fsdir, 32)
	s := filepath.Join(fsdir, "sysroot")
	if err := sysroot.Init(s, "fakeos"); err != nil {
		t.Fatalf("Init: %v", err)
	}
	mountTmpfs(t, filepath.Join(s, "boot"), "mode=0755")
	sr, err := sysroot.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	defer sr.Close()
	ctx := context.Background()
	sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); err != nil {
		t.Fatalf("Deploy(v1): %v", err)
	}
	// 2000 directories: one dirtree object in the repository, 2000
	// directories (and their blocks) in a checkout.
	many := map[string]string{}
	for i := range 2000 {
		many[fmt.Sprintf("usr/share/many/d%04d/f", i)] = "x"
	}
	c2 := sysroottest.FakeOS{Version: "2", Kernel: "k2\n", Files: many}.Commit(t, sr.Repo(), "fakeos/stable")
	freeSpace := fillFS(t, fsdir, 512<<10)
	before, view := mustSnapshot(t, s), booted(t, s)

	_, err = sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Deploy(v2) on a full root filesystem = %v, want ENOSPC", err)
	}
	if !strings.Contains(err.Error(), c2.String()) {
		t.Errorf("Deploy(v2) error %q does not name the commit it was checking out", err)
	}
	t.Logf("Deploy(v2) on a full root filesystem: %v", err)
	checkUnchanged(t, s, sr, before, view)

	freeSpace()
	d, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
	if err != nil {
		t.Fatalf("Deploy(v2) with room again: %v", err)
	}
	if v := booted(t, s); v.Checksum != c2.String() || d.Serial != 0 {
		t.Errorf("after Deploy(v2) with room: BootedView = %s, serial %d; want %s.0", v.Checksum, d.Serial, c2)
	}
}

// TestWrongLayoutIsCorrupt: a boot configuration that cannot be read
// back makes Open fail with errdefs.ErrCorrupt naming the path, and a
// Deploy through a Sysroot opened before the damage refuses to write
// anything. A deployment directory with a bad name that no entry uses
// does not stop Open (ostree admin status reads such a sysroot too), but
// Deploy refuses it as `ostree admin deploy` does ("Invalid deploy
// name").
func TestWrongLayoutIsCorrupt(t *testing.T) {
	type fixture struct {
		s     string
		d     sysroot.Deployment // the only deployment
		entry string             // its BLS entry, relative to s
	}
	tests := []struct {
		name   string
		damage func(t *testing.T, f fixture)
		want   func(f fixture) []string // what the error must name
		openOK bool
	}{
		{name: "boot/loader is a regular file", damage: func(t *testing.T, f fixture) {
			replaceWith(t, filepath.Join(f.s, "boot/loader"), func(p string) error { return os.WriteFile(p, []byte("loader.1\n"), 0o644) })
		}, want: func(f fixture) []string { return []string{filepath.Join(f.s, "boot/loader"), "not a symbolic link"} }},
		{name: "boot/loader points to loader.7", damage: func(t *testing.T, f fixture) {
			replaceWith(t, filepath.Join(f.s, "boot/loader"), func(p string) error { return os.Symlink("loader.7", p) })
		}, want: func(f fixture) []string { return []string{filepath.Join(f.s, "boot/loader"), "loader.7"} }},
		{name: "entry without ostree=", damage: func(t *testing.T, f fixture) {
			p := filepath.Join(f.s, f.entry)
			e := readFile(t, p)
			i, j := strings.Index(e, " ostree="), strings.Index(e, "\nlinux ")
			if err := os.WriteFile(p, []byte(e[:i]+e[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
		}, want: func(f fixture) []string { return []string{f.entry, "no ostree="} }},
		{name: "ostree= names a missing deployment", damage: func(t *testing.T, f fixture) {
			sysroottest.ClearImmutable(f.s)
			if err := os.RemoveAll(filepath.Join(f.s, f.d.Path())); err != nil {
				t.Fatal(err)
			}
		}, want: func(f fixture) []string { return []string{f.entry, f.d.Path(), "missing"} }},
		{name: "ostree= names a deployment with a bad name", damage: func(t *testing.T, f fixture) {
			sysroottest.ClearImmutable(f.s)
			bad := filepath.Join(filepath.Dir(f.d.Path()), "bad-name")
			if err := os.Rename(filepath.Join(f.s, f.d.Path()), filepath.Join(f.s, bad)); err != nil {
				t.Fatal(err)
			}
			link := filepath.Join(f.s, "ostree/boot.1.1/fakeos", f.d.BootChecksum, "0")
			replaceWith(t, link, func(p string) error { return os.Symlink("../../../deploy/fakeos/deploy/bad-name", p) })
		}, want: func(f fixture) []string { return []string{f.entry, "bad-name"} }},
		{name: "a stray deployment directory with a bad name", damage: func(t *testing.T, f fixture) {
			if err := os.Mkdir(filepath.Join(f.s, "ostree/deploy/fakeos/deploy/garbage"), 0o755); err != nil {
				t.Fatal(err)
			}
		}, want: func(f fixture) []string { return []string{"ostree/deploy/fakeos/deploy/garbage"} }, openOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, sr := newSysroot(t)
			ctx := context.Background()
			sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
			d, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"rw"}})
			if err != nil {
				t.Fatal(err)
			}
			v := booted(t, s)
			f := fixture{s: s, d: d, entry: filepath.Join("boot", v.Loader, "entries", v.Entry)}
			sysroottest.FakeOS{Version: "2", Kernel: "k2\n"}.Commit(t, sr.Repo(), "fakeos/stable")
			tt.damage(t, f)
			before := mustSnapshot(t, s)
			check := func(what string, err error) {
				t.Helper()
				if !errors.Is(err, errdefs.ErrCorrupt) {
					t.Fatalf("%s = %v, want ErrCorrupt", what, err)
				}
				for _, w := range tt.want(f) {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("%s error %q does not name %q", what, err, w)
					}
				}
			}
			s2, err := sysroot.Open(s)
			if tt.openOK {
				if err != nil {
					t.Fatalf("Open = %v, want success as ostree admin status", err)
				}
				s2.Close()
			} else {
				check("Open", err)
			}
			_, err = sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
			check("Deploy", err)
			if diff := cmp.Diff(before, mustSnapshot(t, s)); diff != "" {
				t.Errorf("Deploy changed the sysroot (-before +after):\n%s", diff)
			}
		})
	}
}

// replaceWith removes p and makes it again with mk.
func replaceWith(t *testing.T, p string, mk func(string) error) {
	t.Helper()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := mk(p); err != nil {
		t.Fatal(err)
	}
}
