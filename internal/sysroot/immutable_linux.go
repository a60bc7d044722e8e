package sysroot

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// fsImmutableFL is FS_IMMUTABLE_FL (linux/fs.h), which x/sys does not name.
const fsImmutableFL = 0x10

// setImmutable sets or clears the immutable attribute of the directory
// dir (chattr +i / -i on the directory itself, not its contents), as
// libostree seals deployment roots (_ostree_linuxfs_fd_alter_immutable_flag).
// Like libostree it ignores filesystems without attributes (EOPNOTSUPP,
// ENOTTY) and callers without CAP_LINUX_IMMUTABLE (EPERM), so that
// unprivileged tests and tmpfs work.
func setImmutable(dir string, on bool) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dir, err)
	}
	defer unix.Close(fd)
	flags, err := unix.IoctlGetInt(fd, unix.FS_IOC_GETFLAGS)
	if ignorableAttrErr(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading attributes of %s: %w", dir, err)
	}
	if (flags&fsImmutableFL != 0) == on {
		return nil
	}
	if on {
		flags |= fsImmutableFL
	} else {
		flags &^= fsImmutableFL
	}
	err = unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, flags)
	if err != nil && !ignorableAttrErr(err) {
		return fmt.Errorf("setting attributes of %s: %w", dir, err)
	}
	return nil
}

func ignorableAttrErr(err error) bool {
	return errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOTTY) || errors.Is(err, unix.EPERM)
}
