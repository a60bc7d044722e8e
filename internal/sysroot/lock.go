package sysroot

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// lockFile is the sysroot lock libostree takes for every write
// (OSTREE_SYSROOT_LOCKFILE, ostree_sysroot_lock): an exclusive OFD lock
// on S/ostree/lock, which glnx_make_lock_file unlinks when it releases
// it. strata takes the same lock, so strata and `ostree admin` exclude
// each other.
const lockFile = "ostree/lock"

// lockPoll is how often a held lock is retried while waiting.
const lockPoll = 50 * time.Millisecond

// lock takes the sysroot lock, waiting until ctx is done. Because the
// holder unlinks the file on release, a lock won on a file that is no
// longer linked is retried on a fresh file (as systemd's make_lock_file,
// which libglnx copies, does).
func (s *Sysroot) lock(ctx context.Context) (unlock func(), err error) {
	p := filepath.Join(s.path, lockFile)
	for {
		fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC|unix.O_NOCTTY, 0o600)
		if err != nil {
			return nil, fmt.Errorf("opening sysroot lock %s: %w", p, err)
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if err != nil {
			unix.Close(fd)
			if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
				return nil, fmt.Errorf("locking sysroot %s: %w", s.path, err)
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("sysroot %s is locked by another process: %w: %w", s.path, errdefs.ErrConflict, ctx.Err())
			case <-time.After(lockPoll):
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("locking sysroot %s: %w", s.path, err)
		}
		if st.Nlink == 0 {
			unix.Close(fd)
			continue
		}
		return func() {
			unix.Unlink(p)
			unix.Close(fd)
		}, nil
	}
}
