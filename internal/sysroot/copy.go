package sysroot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/strata-os/strata/internal/fsutil"
	"golang.org/x/sys/unix"
)

// copyTree copies the tree at src to dst (which must not exist) as real
// copies, never hardlinks: directories, regular files, symlinks and
// device/fifo nodes, with owner, mode and extended attributes. It is how
// a deployment's etc is made from its usr/etc (Deploy step 4 in docs/formats/sysroot.md), so that
// editing /etc never changes a repository object.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st, _ := fi.Sys().(*syscall.Stat_t)
		switch m := fi.Mode(); {
		case m.IsDir():
			if err := os.Mkdir(to, 0o700); err != nil {
				return fmt.Errorf("copying %s: %w", p, err)
			}
		case m.IsRegular():
			if err := copyRegular(p, to); err != nil {
				return fmt.Errorf("copying %s: %w", p, err)
			}
		case m&fs.ModeSymlink != 0:
			t, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if err := os.Symlink(t, to); err != nil {
				return fmt.Errorf("copying %s: %w", p, err)
			}
		default:
			if st == nil {
				return nil
			}
			if err := unix.Mknod(to, st.Mode, int(st.Rdev)); err != nil {
				return fmt.Errorf("copying %s: %w", p, err)
			}
		}
		return copyMeta(p, to, fi, st)
	})
}

func copyRegular(src, dst string) error {
	in, err := os.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// copyMeta gives dst the xattrs, owner and mode of src (in that order, so
// that setuid bits survive the chown), not following symlinks.
func copyMeta(src, dst string, fi fs.FileInfo, st *syscall.Stat_t) error {
	names, vals, err := fsutil.Llistxattr(src)
	if err != nil && !errors.Is(err, unix.ENOTSUP) {
		return fmt.Errorf("reading xattrs of %s: %w", src, err)
	}
	for i, n := range names {
		if err := unix.Lsetxattr(dst, n, vals[i], 0); err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("setting xattr %s on %s: %w", n, dst, err)
		}
	}
	if st != nil {
		if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil && !errors.Is(err, unix.EPERM) {
			return fmt.Errorf("chown %s: %w", dst, err)
		}
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		return nil
	}
	mode := uint32(fi.Mode().Perm())
	if st != nil {
		mode = st.Mode & 0o7777
	}
	if err := unix.Chmod(dst, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", dst, err)
	}
	return nil
}

// removeAll deletes p, first clearing the immutable attribute of p
// itself if it is a directory (only deployment roots carry it).
func removeAll(p string) error {
	if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
		if err := setImmutable(p, false); err != nil {
			return err
		}
	}
	if err := fsutil.RemoveTree(p); err != nil {
		return fmt.Errorf("removing %s: %w", p, err)
	}
	return nil
}
