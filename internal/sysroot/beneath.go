package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// A deployment's tree is the content of a commit, so nothing in it is
// trusted: a symlink there may point anywhere on the host. The helpers
// below are how sysroot reaches into a deployment: through paths that
// resolve beneath the deployment root and never through a symlink the
// commit planted.

// openBeneath opens rel (slash-separated, relative) beneath the directory
// root with openat2(2) RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS: no component
// of rel may be a symlink or "..", and root itself is opened with
// O_NOFOLLOW. A symlink on the way is errdefs.ErrInvalid.
func openBeneath(root, rel string, flags int) (*os.File, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	return openatBeneath(rfd, rel, flags, unix.RESOLVE_BENEATH|unix.RESOLVE_NO_SYMLINKS|unix.RESOLVE_NO_MAGICLINKS)
}

func openatBeneath(dirfd int, rel string, flags int, resolve uint64) (*os.File, error) {
	how := unix.OpenHow{Flags: uint64(flags | unix.O_CLOEXEC), Resolve: resolve}
	for {
		fd, err := unix.Openat2(dirfd, rel, &how)
		if errors.Is(err, unix.EINTR) || errors.Is(err, unix.EAGAIN) {
			continue
		}
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.EXDEV) {
			return nil, fmt.Errorf("opening %s: a symbolic link or .. on the way leads out of the tree or is not allowed: %w", rel, errdefs.ErrInvalid)
		}
		if err != nil {
			return nil, &os.PathError{Op: "openat2", Path: rel, Err: err}
		}
		return os.NewFile(uintptr(fd), rel), nil
	}
}

// readFileInRoot reads rel as if root were "/": symlinks on the way are
// followed, absolute ones from root, and none can lead out of it
// (RESOLVE_IN_ROOT). It is for files a tree legitimately reaches through
// symlinks, like etc/os-release -> ../usr/lib/os-release.
func readFileInRoot(root, rel string, limit int64) ([]byte, error) {
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	defer unix.Close(rfd)
	f, err := openatBeneath(rfd, rel, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY, unix.RESOLVE_IN_ROOT|unix.RESOLVE_NO_MAGICLINKS)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file: %w", rel, errdefs.ErrInvalid)
	}
	if fi.Size() > limit {
		return nil, fmt.Errorf("%s has %d bytes, more than %d: %w", rel, fi.Size(), limit, errdefs.ErrInvalid)
	}
	buf := make([]byte, fi.Size())
	n, err := f.ReadAt(buf, 0)
	if err != nil && n != len(buf) {
		return nil, fmt.Errorf("reading %s: %w", rel, err)
	}
	return buf[:n], nil
}

// treeDirs are the directories of a deployment that the /etc handling
// writes through: a symlink at any of them would carry those writes (and
// the kernel lookup) onto the host.
var treeDirs = []string{"usr", "usr/etc", "etc"}

// checkTreeDirs refuses a tree at root in which usr, usr/etc or etc
// exists as anything but a directory, symlinks included
// (errdefs.ErrInvalid). libostree 2022.7 follows them.
func checkTreeDirs(root string) error {
	for _, rel := range treeDirs {
		fi, err := os.Lstat(root + "/" + rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("checking /%s: %w", rel, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return fmt.Errorf("tree has /%s as a symbolic link, refused: %w", rel, errdefs.ErrInvalid)
		}
		if !fi.IsDir() {
			return fmt.Errorf("tree has /%s as a non-directory: %w", rel, errdefs.ErrInvalid)
		}
	}
	return nil
}

// openTreeDir opens the directory rel (one of treeDirs, or below) of the
// deployment root as an os.Root, refusing a symlink anywhere on the way:
// each component is checked with Lstat inside the deployment's own
// os.Root, which also keeps the final open inside the deployment.
func openTreeDir(root *os.Root, rel string) (*os.Root, error) {
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := path.Join(parts[:i+1]...)
		fi, err := root.Lstat(p)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("/%s is a symbolic link, refused: %w", p, errdefs.ErrInvalid)
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("/%s is not a directory: %w", p, errdefs.ErrInvalid)
		}
	}
	return root.OpenRoot(rel)
}

// hasControl reports whether s holds an ASCII control character (C0 or
// DEL): a newline in a boot entry value starts a new key, and escape
// sequences reach the terminal of whoever prints it.
func hasControl(s string) bool {
	return strings.IndexFunc(s, isControl) >= 0
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// escapeControl replaces each ASCII control character of s with \xNN, so
// that a value read from a tree cannot add lines to a boot entry. Other
// bytes, UTF-8 included, are kept.
func escapeControl(s string) string {
	if !hasControl(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			fmt.Fprintf(&b, `\x%02x`, c)
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
