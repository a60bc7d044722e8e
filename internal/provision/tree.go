package provision

import (
	"errors"
	"fmt"
	"os"
	"path"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// root is the tree being provisioned. Every path is resolved by openat2 with RESOLVE_IN_ROOT,
// so that symlinks, absolute ones included, resolve as they will once the tree is the root
// filesystem, and nothing a config or the tree holds can reach outside it.
type root struct {
	fd   int
	path string
	// dirs caches the O_PATH descriptors of directories already resolved: a config's
	// thousand files share a few dozen directories. Anything that removes clears it.
	dirs map[string]int
}

func openRoot(dir string) (*root, error) {
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening root %s: %w", dir, &os.PathError{Op: "open", Path: dir, Err: err})
	}
	return &root{fd: fd, path: dir, dirs: map[string]int{}}, nil
}

func (r *root) Close() error {
	r.forget()
	return unix.Close(r.fd)
}

func (r *root) forget() {
	for _, fd := range r.dirs {
		unix.Close(fd)
	}
	clear(r.dirs)
}

// dir returns a cached descriptor of a directory; the caller must not close it.
func (r *root) dir(rel string) (int, error) {
	if fd, ok := r.dirs[rel]; ok {
		return fd, nil
	}
	fd, err := r.open(rel, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		return -1, err
	}
	r.dirs[rel] = fd
	return fd, nil
}

// rel turns a config path ("/etc/x") into a path relative to the root ("etc/x"). Paths with
// ".." components are refused: they cannot leave the root, but they say something other
// than what they mean.
func rel(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("path %q is not absolute: %w", p, errdefs.ErrInvalid)
	}
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return "", fmt.Errorf("path %q has a .. component: %w", p, errdefs.ErrInvalid)
		}
	}
	r := strings.TrimPrefix(path.Clean(p), "/")
	if r == "" {
		r = "."
	}
	return r, nil
}

// Mount points are crossed: a deployment's /var is the stateroot's, bind-mounted.
const resolveFlags = unix.RESOLVE_IN_ROOT | unix.RESOLVE_NO_MAGICLINKS

// open opens a path relative to the root, following symlinks inside it.
func (r *root) open(relPath string, flags int, mode uint32) (int, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Mode: uint64(mode), Resolve: resolveFlags}
	for {
		fd, err := unix.Openat2(r.fd, relPath, &how)
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "open", Path: "/" + relPath, Err: err}
		}
		return fd, nil
	}
}

// parent opens the directory holding relPath (nothing is followed in its last component) and
// returns it with the last component's name. With create, missing directories on the way are
// made with mode 0755 and owner root, as Ignition makes them.
func (r *root) parent(relPath string, create bool) (int, string, error) {
	dir, name := path.Split(relPath)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if name == "" || name == "." {
		return -1, "", fmt.Errorf("internal error: no name in %q", relPath)
	}
	fd, err := r.dir(dir)
	if err != nil && create && errors.Is(err, unix.ENOENT) {
		if err := r.mkdirAll(dir); err != nil {
			return -1, "", err
		}
		fd, err = r.dir(dir)
	}
	if err != nil {
		return -1, "", err
	}
	// Callers close what they get; the cache keeps its own descriptor.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	return dup, name, err
}

// mkdirAll makes a directory and its missing parents inside the root.
func (r *root) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	fd, err := r.open(dir, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err == nil {
		unix.Close(fd)
		return nil
	}
	if !errors.Is(err, unix.ENOENT) {
		return err
	}
	pfd, name, err := r.parent(dir, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Mkdirat(pfd, name, 0o755); err != nil {
		// EEXIST here is a dangling symlink (or a race): never followed.
		return &os.PathError{Op: "mkdir", Path: "/" + dir, Err: err}
	}
	// mkdir is subject to the umask; Ignition's directories are 0755 whatever it is.
	return chmodAt(pfd, name, 0o755, "/"+dir)
}

// chmodAt sets the mode of name in pfd without following a symlink there: a symlink's mode
// is left alone, as it cannot be set.
func chmodAt(pfd int, name string, mode uint32, display string) error {
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err == unix.ELOOP {
		return nil
	}
	if err != nil {
		return &os.PathError{Op: "chmod", Path: display, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: display, Err: err}
	}
	return nil
}

// lstat stats a path without following its last component. ok is false when it is absent.
func (r *root) lstat(relPath string) (st unix.Stat_t, ok bool, err error) {
	pfd, name, err := r.parent(relPath, false)
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
		return st, false, nil
	}
	if err != nil {
		return st, false, err
	}
	defer unix.Close(pfd)
	err = unix.Fstatat(pfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == unix.ENOENT {
		return st, false, nil
	}
	if err != nil {
		return st, false, &os.PathError{Op: "lstat", Path: "/" + relPath, Err: err}
	}
	return st, true, nil
}

// readFile reads a regular file inside the root, following symlinks inside it. ok is false
// when it is absent.
func (r *root) readFile(relPath string) (data []byte, ok bool, err error) {
	fd, err := r.open(relPath, unix.O_RDONLY, 0)
	if errors.Is(err, unix.ENOENT) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	f := os.NewFile(uintptr(fd), "/"+relPath)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	if !st.Mode().IsRegular() {
		return nil, false, fmt.Errorf("/%s is not a regular file: %w", relPath, errdefs.ErrFailedPrecondition)
	}
	data = make([]byte, 0, st.Size())
	buf := make([]byte, 64<<10)
	for {
		n, err := f.Read(buf)
		data = append(data, buf[:n]...)
		if err != nil {
			break
		}
	}
	return data, true, nil
}

// writeFile replaces relPath with data, atomically: a temporary file in the same directory
// gets the content, owner and mode, then is renamed over the path. The parent directories are
// made as needed.
func (r *root) writeFile(relPath string, data []byte, mode uint32, uid, gid int) error {
	pfd, name, err := r.parent(relPath, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	tmp := ".strata-provision-" + name
	if len(tmp) > 255 {
		tmp = tmp[:255]
	}
	unix.Unlinkat(pfd, tmp, 0)
	fd, err := unix.Openat(pfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return &os.PathError{Op: "create", Path: "/" + relPath, Err: err}
	}
	f := os.NewFile(uintptr(fd), "/"+relPath)
	_, err = f.Write(data)
	if err == nil {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		// After chown, which clears setuid and setgid bits.
		err = unix.Fchmod(fd, mode)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(pfd, tmp, pfd, name)
	}
	if err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return &os.PathError{Op: "write", Path: "/" + relPath, Err: err}
	}
	return nil
}

// removeAll removes whatever is at relPath, a directory with its contents.
func (r *root) removeAll(relPath string) error {
	r.forget()
	st, ok, err := r.lstat(relPath)
	if err != nil || !ok {
		return err
	}
	pfd, name, err := r.parent(relPath, false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return unlinkat(pfd, name, 0, relPath)
	}
	return r.removeDir(pfd, name, relPath)
}

func (r *root) removeDir(pfd int, name, relPath string) error {
	fd, err := unix.Openat(pfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/" + relPath, Err: err}
	}
	d := os.NewFile(uintptr(fd), relPath)
	names, err := d.Readdirnames(-1)
	if err != nil {
		d.Close()
		return err
	}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(fd, n, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			d.Close()
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = r.removeDir(fd, n, path.Join(relPath, n))
		} else {
			err = unlinkat(fd, n, 0, path.Join(relPath, n))
		}
		if err != nil {
			d.Close()
			return err
		}
	}
	d.Close()
	return unlinkat(pfd, name, unix.AT_REMOVEDIR, relPath)
}

func unlinkat(dfd int, name string, flags int, relPath string) error {
	if err := unix.Unlinkat(dfd, name, flags); err != nil && err != unix.ENOENT {
		return &os.PathError{Op: "remove", Path: "/" + relPath, Err: err}
	}
	return nil
}

// chown sets owner and, unless mode is nil, mode of relPath without following its last
// component (a symlink's mode cannot be set).
func (r *root) chown(relPath string, uid, gid int, mode *uint32) error {
	pfd, name, err := r.parent(relPath, false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Fchownat(pfd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "chown", Path: "/" + relPath, Err: err}
	}
	if mode != nil {
		return chmodAt(pfd, name, *mode, "/"+relPath)
	}
	return nil
}

// statfs returns the filesystem statistics of where relPath is or would be created: its
// nearest existing ancestor's filesystem.
func (r *root) statfs(relPath string) (unix.Statfs_t, error) {
	var st unix.Statfs_t
	for p := relPath; ; p = path.Dir(p) {
		fd, err := r.open(p, unix.O_PATH, 0)
		if err == nil {
			err = unix.Fstatfs(fd, &st)
			unix.Close(fd)
			return st, err
		}
		if p == "." || p == "/" {
			return st, err
		}
	}
}

// creatable checks that the directories above relPath exist or can be made: no dangling
// symlink and no non-directory in the way, found before anything is written.
func (r *root) creatable(relPath string) error {
	for d := path.Dir(relPath); d != "."; d = path.Dir(d) {
		fd, err := r.open(d, unix.O_PATH|unix.O_DIRECTORY, 0)
		if err == nil {
			unix.Close(fd)
			return nil
		}
		if errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("a non-directory is in the way of /%s: %w", relPath, errdefs.ErrAlreadyExists)
		}
		if !errors.Is(err, unix.ENOENT) {
			return err
		}
		st, ok, lerr := r.lstat(d)
		if lerr != nil {
			return lerr
		}
		if ok && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return fmt.Errorf("/%s is a symlink to a directory that does not exist: %w", d, errdefs.ErrFailedPrecondition)
		}
		if ok {
			return fmt.Errorf("/%s is not a directory: %w", d, errdefs.ErrAlreadyExists)
		}
	}
	return nil
}
