package boot

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
)

// CheckESPMount verifies that dir is a mounted FAT filesystem, as the ESP
// of a running node must be. Opening dir triggers its automount (the
// FstabESP line), so a failed or missing mount is an error instead of
// boot entries written into the root filesystem's directory under it.
// Nothing mounted there is errdefs.ErrFailedPrecondition.
func CheckESPMount(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening the ESP %s: %w", dir, err)
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("checking the ESP %s: %w", dir, err)
	}
	if st.Type != unix.MSDOS_SUPER_MAGIC {
		return fmt.Errorf("the ESP %s is not a FAT filesystem (type 0x%x): is the EFI system partition mounted there? %w",
			dir, st.Type, errdefs.ErrFailedPrecondition)
	}
	return nil
}
