package fsutil

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
)

// fsImmutableFL is FS_IMMUTABLE_FL (linux/fs.h), which x/sys does not name.
const fsImmutableFL = 0x10

// SetImmutable sets (on) or clears the immutable attribute of the
// directory dir itself, not its contents (chattr +i / -i), as libostree
// seals deployment roots (_ostree_linuxfs_fd_alter_immutable_flag). A
// final symlink is not followed. A filesystem without attributes (ENOTTY,
// EOPNOTSUPP: tmpfs, overlayfs) is errdefs.ErrUnsupported; errors keep the
// errno, so that a caller can also tell EPERM (no CAP_LINUX_IMMUTABLE),
// ENOTDIR or ELOOP apart.
func SetImmutable(dir string, on bool) error {
	fd, flags, err := openFlags(dir)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if (flags&fsImmutableFL != 0) == on {
		return nil
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags); err != nil {
		return attrErr("setting the attributes of", dir, err)
	}
	return nil
}

// Immutable reports whether the directory dir carries the immutable
// attribute; errors are those of SetImmutable.
func Immutable(dir string) (bool, error) {
	fd, flags, err := openFlags(dir)
	if err != nil {
		return false, err
	}
	unix.Close(fd)
	return flags&fsImmutableFL != 0, nil
}

// openFlags opens the directory dir and reads its attribute flags; the
// caller closes the descriptor.
func openFlags(dir string) (int, int, error) {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("opening directory %s: %w", dir, err)
	}
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		unix.Close(fd)
		return -1, 0, attrErr("reading the attributes of", dir, err)
	}
	return fd, flags, nil
}

func attrErr(doing, dir string, err error) error {
	if errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EOPNOTSUPP) {
		return fmt.Errorf("%s %s: %w: %w", doing, dir, err, errdefs.ErrUnsupported)
	}
	return fmt.Errorf("%s %s: %w", doing, dir, err)
}
