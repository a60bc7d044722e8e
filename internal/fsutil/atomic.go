package fsutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// WriteFileAtomic replaces path with data: a temporary file in the same
// directory is written and fsynced, renamed over path, and the directory is
// fsynced. Readers see the old or the new content, never a mix.
func WriteFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, TempCause(err))
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", path, TempCause(err))
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", path, TempCause(err))
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, TempCause(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, TempCause(err))
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, TempCause(err))
	}
	ok = true
	return FsyncDir(dir)
}

// TempCause returns the system error under a *fs.PathError or
// *os.LinkError about a temporary file, so that an error names the file
// the caller was writing and not the random name it was staged under
// (errors.Is still finds the errno and fs.ErrPermission etc.).
func TempCause(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// FsyncFile fsyncs the file at path.
func FsyncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

// FsyncDir fsyncs a directory so that entries created or renamed in it are
// durable.
func FsyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory %s: %w", dir, err)
	}
	return nil
}

// SyncFS flushes the whole filesystem that holds path (syncfs(2)).
func SyncFS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// Llistxattr returns the extended attributes of path (not following a
// final symlink) as name/value pairs. A filesystem without xattr support
// yields none.
func Llistxattr(path string) (names []string, values [][]byte, err error) {
	buf := make([]byte, 1024)
	var n int
	for {
		n, err = unix.Llistxattr(path, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil, nil
		}
		if err != nil {
			return nil, nil, fmt.Errorf("listing xattrs of %s: %w", path, err)
		}
		break
	}
	for _, name := range splitNul(buf[:n]) {
		v, err := Lgetxattr(path, name)
		if err != nil {
			return nil, nil, err
		}
		names = append(names, name)
		values = append(values, v)
	}
	return names, values, nil
}

// Lgetxattr reads one extended attribute of path.
func Lgetxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(path, name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err2 := unix.Lgetxattr(path, name, nil)
			if err2 != nil {
				return nil, fmt.Errorf("reading xattr %s of %s: %w", name, path, err2)
			}
			buf = make([]byte, sz+1)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s of %s: %w", name, path, err)
		}
		return buf[:n:n], nil
	}
}

func splitNul(b []byte) []string {
	var out []string
	start := 0
	for i, c := range b {
		if c == 0 {
			if i > start {
				out = append(out, string(b[start:i]))
			}
			start = i + 1
		}
	}
	return out
}
