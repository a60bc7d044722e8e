package sysroot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"strconv"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"golang.org/x/sys/unix"
)

// etcMerger replays the local changes on NEW_ETC, one libostree step at a
// time (ostree-sysroot-deploy.c: copy_modified_config_file,
// ensure_directory_from_template, copy_dir_recurse, and libglnx's
// glnx_shutil_rm_rf_at and glnx_file_copy_at).
//
// Paths are resolved inside os.Roots: directories on the way are followed
// through symlinks as libostree's openat(etc_fd, "a/b/c") does, but an
// escape from the tree fails instead of reaching the host. The last
// component is then handled with *at calls on its parent directory,
// never followed.
type etcMerger struct {
	old *os.Root // OLD_ETC
	new *os.Root // NEW_ETC
}

// etcRootDir opens the directory rel inside r, following symlinks that
// stay inside r.
func etcRootDir(r *os.Root, rel string) (*os.File, error) {
	return r.OpenFile(rel, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK, 0)
}

// removeAll removes rel from NEW_ETC like glnx_shutil_rm_rf_at: nothing if
// it is absent, unlink if it is not a directory, else the whole tree.
func (m *etcMerger) removeAll(rel string) error {
	parent, err := etcRootDir(m.new, path.Dir(rel))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer parent.Close()
	pfd, name := int(parent.Fd()), path.Base(rel)
	dir, err := etcOpenDir(pfd, name)
	switch {
	case errors.Is(err, unix.ENOENT):
		return nil
	case errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP):
		return etcUnlinkat(pfd, name, 0)
	case err != nil:
		return err
	}
	err = etcRemoveChildren(dir)
	dir.Close()
	if err != nil {
		return err
	}
	if err := etcUnlinkat(pfd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	return nil
}

func etcRemoveChildren(dir *os.File) error {
	entries, err := dir.ReadDir(-1)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", dir.Name(), err)
	}
	fd := int(dir.Fd())
	for _, e := range entries {
		if !e.IsDir() {
			if err := etcUnlinkat(fd, e.Name(), 0); err != nil && !errors.Is(err, unix.ENOENT) {
				return err
			}
			continue
		}
		sub, err := etcOpenDir(fd, e.Name())
		if err != nil {
			return err
		}
		err = etcRemoveChildren(sub)
		sub.Close()
		if err != nil {
			return err
		}
		if err := etcUnlinkat(fd, e.Name(), unix.AT_REMOVEDIR); err != nil {
			return err
		}
	}
	return nil
}

// copyModified copies rel from OLD_ETC over NEW_ETC
// (copy_modified_config_file).
func (m *etcMerger) copyModified(rel string) error {
	dir, name := path.Dir(rel), path.Base(rel)
	oldParent, err := etcRootDir(m.old, dir)
	if err != nil {
		return err
	}
	defer oldParent.Close()
	ofd := int(oldParent.Fd())
	var st unix.Stat_t
	if err := unix.Fstatat(ofd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("reading modified config file: %w", &os.PathError{Op: "fstatat", Path: rel, Err: err})
	}
	var newParent *os.File
	if dir == "." {
		newParent, err = etcRootDir(m.new, ".")
	} else {
		newParent, err = m.ensureDir(dir)
	}
	if err != nil {
		return err
	}
	defer newParent.Close()
	nfd := int(newParent.Fd())
	var nst unix.Stat_t
	err = unix.Fstatat(nfd, name, &nst, unix.AT_SYMLINK_NOFOLLOW)
	switch {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return &os.PathError{Op: "fstatat", Path: rel, Err: err}
	case etcKind(nst.Mode) == etcKindDir:
		if etcKind(st.Mode) != etcKindDir {
			return fmt.Errorf("modified config file %s newly defaults to directory, cannot merge: %w", rel, errdefs.ErrFailedPrecondition)
		}
		// A directory in both: its content is handled path by path, and
		// its own attributes stay the new default's (libostree assumes
		// the parent was copied recursively already).
		return nil
	default:
		if err := etcUnlinkat(nfd, name, 0); err != nil {
			return err
		}
	}
	switch etcKind(st.Mode) {
	case etcKindDir:
		return etcCopyDir(ofd, nfd, name)
	case etcKindRegular, etcKindSymlink:
		return etcCopyFile(ofd, name, &st, nfd, name)
	}
	// libostree logs "Ignoring non-regular/non-symlink file found during
	// /etc merge" and goes on.
	return nil
}

// ensureDir makes sure the directory rel exists in NEW_ETC, creating
// missing parents, and gives it (only it, not existing parents) the owner,
// mode and xattrs of rel in OLD_ETC (ensure_directory_from_template).
// It returns the directory, opened.
func (m *etcMerger) ensureDir(rel string) (*os.File, error) {
	src, err := etcRootDir(m.old, rel)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	dir, name := path.Dir(rel), path.Base(rel)
	parent, err := etcRootDir(m.new, dir)
	if errors.Is(err, fs.ErrNotExist) && dir != "." {
		var p *os.File
		if p, err = m.ensureDir(dir); err == nil {
			p.Close()
			parent, err = etcRootDir(m.new, dir)
		}
	}
	if err != nil {
		return nil, err
	}
	err = unix.Mkdirat(int(parent.Fd()), name, 0o700)
	parent.Close()
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, &os.PathError{Op: "mkdirat", Path: rel, Err: err}
	}
	// An existing entry is opened following a symlink, as libostree does,
	// but only to a directory inside NEW_ETC.
	dst, err := etcRootDir(m.new, rel)
	if err != nil {
		return nil, err
	}
	if err := etcCopyDirAttrs(src, dst); err != nil {
		dst.Close()
		return nil, fmt.Errorf("copying attributes of %s: %w", rel, err)
	}
	return dst, nil
}

// etcCopyDir copies the directory name from srcDir into dstDir recursively
// (copy_dir_recurse). Its entries are never followed; a fifo, socket or
// device inside fails the copy, as glnx_file_copy_at does.
func etcCopyDir(srcDir, dstDir int, name string) error {
	src, err := etcOpenDir(srcDir, name)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := unix.Mkdirat(dstDir, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return &os.PathError{Op: "mkdirat", Path: name, Err: err}
	}
	dst, err := etcOpenDir(dstDir, name)
	if err != nil {
		return err
	}
	defer dst.Close()
	if err := etcCopyDirAttrs(src, dst); err != nil {
		return fmt.Errorf("copying attributes of %s: %w", name, err)
	}
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", name, err)
	}
	sfd, dfd := int(src.Fd()), int(dst.Fd())
	for _, child := range names {
		var st unix.Stat_t
		if err := unix.Fstatat(sfd, child, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &os.PathError{Op: "fstatat", Path: path.Join(name, child), Err: err}
		}
		if etcKind(st.Mode) == etcKindDir {
			err = etcCopyDir(sfd, dfd, child)
		} else {
			err = etcCopyFile(sfd, child, &st, dfd, child)
		}
		if err != nil {
			return fmt.Errorf("copying %s: %w", path.Join(name, child), err)
		}
	}
	return nil
}

// etcCopyDirAttrs gives dst the xattrs, then the owner, then the mode of
// src (dirfd_copy_attributes_and_xattrs). Xattrs dst has and src has not
// are kept.
func etcCopyDirAttrs(src, dst *os.File) error {
	var st unix.Stat_t
	if err := unix.Fstat(int(src.Fd()), &st); err != nil {
		return err
	}
	xs, err := etcFdXattrs(int(src.Fd()))
	if err != nil {
		return err
	}
	dfd := int(dst.Fd())
	for _, x := range xs {
		if err := unix.Fsetxattr(dfd, x.name, x.value, 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", x.name, err)
		}
	}
	if err := unix.Fchown(dfd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("changing owner: %w", err)
	}
	if err := unix.Fchmod(dfd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("changing mode: %w", err)
	}
	return nil
}

// etcCopyFile copies the regular file or symlink name (whose lstat is st)
// from srcDir to dstName in dstDir (glnx_file_copy_at with
// GLNX_FILE_COPY_OVERWRITE).
func etcCopyFile(srcDir int, name string, st *unix.Stat_t, dstDir int, dstName string) error {
	switch etcKind(st.Mode) {
	case etcKindSymlink:
		return etcCopySymlink(srcDir, name, st, dstDir, dstName)
	case etcKindRegular:
		return etcCopyRegular(srcDir, name, st, dstDir, dstName)
	}
	return fmt.Errorf("cannot copy non-regular/non-symlink file %s: %w", name, errdefs.ErrUnsupported)
}

// etcCopySymlink creates the link (dstName must not exist), then sets its
// xattrs and owner; a symlink has no mode of its own.
func etcCopySymlink(srcDir int, name string, st *unix.Stat_t, dstDir int, dstName string) error {
	target, err := etcReadlink(srcDir, name)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, dstDir, dstName); err != nil {
		return &os.PathError{Op: "symlinkat", Path: dstName, Err: err}
	}
	// There is no lsetxattrat: go through the parent's /proc/self/fd
	// entry, the last component staying unfollowed (as libglnx does).
	xs, err := etcLinkXattrs(etcProcPath(srcDir, name))
	if err != nil {
		return err
	}
	dpath := etcProcPath(dstDir, dstName)
	for _, x := range xs {
		if err := unix.Lsetxattr(dpath, x.name, x.value, 0); err != nil {
			return fmt.Errorf("setting xattr %s on %s: %w", x.name, dstName, err)
		}
	}
	if err := unix.Fchownat(dstDir, dstName, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &os.PathError{Op: "fchownat", Path: dstName, Err: err}
	}
	return nil
}

// etcCopyRegular writes a temporary file next to dstName, in libglnx's
// order: content, owner, xattrs (after the chown that would drop
// security.capability), mode (after the xattrs, which a 0400 file would
// refuse), access and modification times; then renames it over dstName.
func etcCopyRegular(srcDir int, name string, st *unix.Stat_t, dstDir int, dstName string) (err error) {
	src, err := etcOpenFile(srcDir, name)
	if err != nil {
		return err
	}
	defer src.Close()
	tmp, tmpName, err := etcCreateTemp(dstDir, dstName)
	if err != nil {
		return err
	}
	defer func() {
		if tmp != nil {
			tmp.Close()
		}
		if err != nil {
			unix.Unlinkat(dstDir, tmpName, 0)
		}
	}()
	if _, err := io.Copy(tmp, src); err != nil {
		return fmt.Errorf("copying content of %s: %w", name, err)
	}
	tfd := int(tmp.Fd())
	if err := unix.Fchown(tfd, int(st.Uid), int(st.Gid)); err != nil {
		return fmt.Errorf("changing owner of %s: %w", dstName, err)
	}
	xs, err := etcFdXattrs(int(src.Fd()))
	if err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Fsetxattr(tfd, x.name, x.value, 0); err != nil {
			return fmt.Errorf("setting xattr %s on %s: %w", x.name, dstName, err)
		}
	}
	if err := unix.Fchmod(tfd, st.Mode&0o7777); err != nil {
		return fmt.Errorf("changing mode of %s: %w", dstName, err)
	}
	// Like libglnx, a failure to set the times is ignored.
	_ = unix.UtimesNanoAt(dstDir, tmpName, []unix.Timespec{st.Atim, st.Mtim}, unix.AT_SYMLINK_NOFOLLOW)
	if err := tmp.Close(); err != nil {
		return err
	}
	tmp = nil
	if err := unix.Renameat(dstDir, tmpName, dstDir, dstName); err != nil {
		return &os.PathError{Op: "renameat", Path: dstName, Err: err}
	}
	return nil
}

func etcCreateTemp(dir int, base string) (*os.File, string, error) {
	for range 100 {
		name := ".strata-tmp-" + strconv.FormatUint(rand.Uint64(), 36) + "-" + base
		if len(name) > 255 {
			name = name[:255]
		}
		fd, err := unix.Openat(dir, name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if errors.Is(err, unix.EEXIST) || errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, "", &os.PathError{Op: "creating temporary file for", Path: base, Err: err}
		}
		return os.NewFile(uintptr(fd), name), name, nil
	}
	return nil, "", fmt.Errorf("creating temporary file for %s: %w", base, errdefs.ErrAlreadyExists)
}

func etcUnlinkat(dirfd int, name string, flags int) error {
	if err := unix.Unlinkat(dirfd, name, flags); err != nil {
		return &os.PathError{Op: "unlinkat", Path: name, Err: err}
	}
	return nil
}

func etcProcPath(dirfd int, name string) string {
	return "/proc/self/fd/" + strconv.Itoa(dirfd) + "/" + name
}

type etcXattr struct {
	name  string
	value []byte
}

// etcLinkXattrs reads the xattrs of path without following a final
// symlink. Empty values are dropped, as libglnx does when it reads them.
func etcLinkXattrs(p string) ([]etcXattr, error) {
	names, values, err := fsutil.Llistxattr(p)
	if err != nil {
		return nil, err
	}
	var out []etcXattr
	for i, n := range names {
		if len(values[i]) > 0 {
			out = append(out, etcXattr{n, values[i]})
		}
	}
	return out, nil
}

// etcFdXattrs reads the xattrs of an open file. Empty values are dropped,
// as libglnx does.
func etcFdXattrs(fd int) ([]etcXattr, error) {
	size, err := unix.Flistxattr(fd, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	buf := make([]byte, size)
	for {
		n, err := unix.Flistxattr(fd, buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, 2*len(buf)+64)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing xattrs: %w", err)
		}
		buf = buf[:n]
		break
	}
	var out []etcXattr
	for len(buf) > 0 {
		i := 0
		for i < len(buf) && buf[i] != 0 {
			i++
		}
		name := string(buf[:i])
		buf = buf[min(i+1, len(buf)):]
		if name == "" {
			continue
		}
		v, err := etcFgetxattr(fd, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		if len(v) > 0 {
			out = append(out, etcXattr{name, v})
		}
	}
	return out, nil
}

func etcFgetxattr(fd int, name string) ([]byte, error) {
	for {
		size, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			return nil, err
		}
		if size == 0 {
			return nil, nil
		}
		buf := make([]byte, size)
		n, err := unix.Fgetxattr(fd, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}
