package sysroot

import (
	"errors"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
)

// setImmutable sets or clears the immutable attribute of the directory
// dir (fsutil.SetImmutable). Like libostree it ignores filesystems without
// attributes and callers without CAP_LINUX_IMMUTABLE (EPERM), so that
// unprivileged tests and tmpfs work.
func setImmutable(dir string, on bool) error {
	err := fsutil.SetImmutable(dir, on)
	if errors.Is(err, errdefs.ErrUnsupported) || errors.Is(err, unix.EPERM) {
		return nil
	}
	return err
}
