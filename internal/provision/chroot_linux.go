package provision

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
)

// programDirs are where ChrootRun looks a program up inside the tree, in PATH's usual order for
// root.
var programDirs = []string{"usr/sbin", "usr/bin", "sbin", "bin"}

// ChrootRun returns a RunFunc that runs the programs of the tree at root, chrooted there. On a
// first boot the initramfs has none of sgdisk, blkid or mkfs, but the deployment it is about to
// boot has them (a verified commit): the disks are made with the OS's own tools. The caller
// makes /dev, /proc and /sys visible inside root (ChrootDisks does).
func ChrootRun(root string) RunFunc {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		prog, err := lookPathIn(root, name)
		if err != nil {
			return nil, err
		}
		var stderr bytes.Buffer
		cmd := exec.CommandContext(ctx, prog, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL=C"}
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return out, fmt.Errorf("%s %s (in %s): %w: %s", name, strings.Join(args, " "), root, err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
}

// lookPathIn returns the path, inside root, of the executable name found in programDirs. Each
// candidate resolves as it will once root is "/" (RESOLVE_IN_ROOT): an absolute symlink such as
// /sbin -> /usr/sbin or mkfs.ext4 -> /usr/sbin/mke2fs is followed within the tree, never into
// the initramfs around it.
func lookPathIn(root, name string) (string, error) {
	if strings.Contains(name, "/") {
		return "", fmt.Errorf("program %q: a bare name is looked up in the tree: %w", name, errdefs.ErrInvalid)
	}
	r, err := openRoot(root)
	if err != nil {
		return "", err
	}
	defer r.Close()
	for _, dir := range programDirs {
		p := path.Join(dir, name)
		fd, err := r.open(p, unix.O_PATH, 0)
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("looking %s up in %s: %w", name, root, err)
		}
		var st unix.Stat_t
		err = unix.Fstat(fd, &st)
		unix.Close(fd)
		if err == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o111 != 0 {
			return "/" + p, nil
		}
	}
	return "", fmt.Errorf("%s is not in the deployment's %s: %w", name, strings.Join(programDirs, ", "), errdefs.ErrNotFound)
}

// ChrootDisks is the DiskFormatter of a first boot: it formats with the tools of the deployment
// at Root (ChrootRun), with the initramfs's /dev, /proc and /sys bound into it for the time of
// the work and unbound afterwards, so that switch_root later moves them there as on any boot.
// Devices that the config names are waited for (DeviceWait, default 30 s): on a first boot the
// second disk may appear after the root one.
type ChrootDisks struct {
	Root       string
	DeviceWait time.Duration
}

var _ DiskFormatter = ChrootDisks{}

func (c ChrootDisks) Format(ctx context.Context, s types.Storage) (err error) {
	var bound []string
	defer func() {
		for i := len(bound) - 1; i >= 0; i-- {
			if uerr := unix.Unmount(bound[i], unix.MNT_DETACH); uerr != nil {
				err = errors.Join(err, fmt.Errorf("unmounting %s: %w", bound[i], uerr))
			}
		}
	}()
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		target := filepath.Join(c.Root, d)
		if err := bindInto(d, target); err != nil {
			return fmt.Errorf("binding %s into %s: %w", d, c.Root, err)
		}
		bound = append(bound, target)
	}
	wait := c.DeviceWait
	if wait == 0 {
		wait = 30 * time.Second
	}
	return diskFormatter{run: ChrootRun(c.Root), wait: wait}.Format(ctx, s)
}

// bindInto bind-mounts src (recursively) on target, a directory of the tree that must be one
// itself: a symlink there (absolute ones resolve against the initramfs) would carry the mount,
// and the unmount after it, to wherever it points. The target is opened without following a
// symlink and mounted on through its descriptor, so what was checked is what gets the mount.
func bindInto(src, target string) error {
	fd, err := unix.Open(target, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("the tree's %s is not a directory (a symlink?): %w", target, errdefs.ErrInvalid)
	}
	if err != nil {
		return &os.PathError{Op: "open", Path: target, Err: err}
	}
	defer unix.Close(fd)
	return unix.Mount(src, fmt.Sprintf("/proc/self/fd/%d", fd), "", unix.MS_BIND|unix.MS_REC, "")
}

// waitDevice waits until dev exists, up to wait, polling every 100 ms.
func waitDevice(ctx context.Context, dev string, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	for {
		_, err := os.Stat(dev)
		if err == nil {
			return nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("device %s: %w", dev, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("device %s did not appear within %s (before udev runs only kernel names such as /dev/vdb or /dev/sdb exist): %w",
				dev, wait, errdefs.ErrNotFound)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
