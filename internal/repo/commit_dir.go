package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"unicode/utf8"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// DirSource commits the directory at path, like `ostree commit
// --tree=dir=PATH`: regular files, symlinks (any target) and directories
// with their uid, gid, mode (setuid, setgid and sticky included) and all
// extended attributes; the directory's own metadata becomes the root
// dirmeta. Hardlinked paths are committed independently (their content
// dedups). Sockets, FIFOs and device nodes are refused
// (errdefs.ErrInvalid), as are file names that are not UTF-8.
func DirSource(path string) TreeSource { return dirSource{path: path} }

type dirSource struct{ path string }

func (s dirSource) build(ctx context.Context, b *treeBuilder) error {
	f, err := os.Open(s.path)
	if err != nil {
		return fmt.Errorf("opening tree: %w", err)
	}
	meta, err := b.statDir(f, s.path)
	if err != nil {
		f.Close()
		return err
	}
	b.root = newMdir(meta)
	return b.walkDir(ctx, f, b.root, s.path, "/")
}

// statDir reads a directory's metadata from its open descriptor.
func (b *treeBuilder) statDir(f *os.File, path string) (ostree.DirMeta, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return ostree.DirMeta{}, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return ostree.DirMeta{}, fmt.Errorf("%s is not a directory: %w", path, errdefs.ErrInvalid)
	}
	var xs []ostree.Xattr
	if !b.noX && !b.canon {
		var err error
		if xs, _, err = fdXattrs(int(f.Fd()), nil); err != nil {
			return ostree.DirMeta{}, fmt.Errorf("%s: %w", path, err)
		}
	}
	return b.dirMeta(st.Uid, st.Gid, st.Mode, xs), nil
}

// walkDir records the entries of the open directory f (closing it) and
// recurses into subdirectories, depth first. Regular files and symlinks go
// to the workers.
func (b *treeBuilder) walkDir(ctx context.Context, f *os.File, d *mdir, path, where string) error {
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return fmt.Errorf("reading directory: %w", err)
	}
	for _, e := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := e.Name()
		p, wh := path+"/"+name, joinPath(where, name)
		if err := checkName(name); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		switch e.Type() {
		case 0:
			n := &mfile{}
			d.children[name] = &mnode{file: n}
			if err := b.submit(contentJob{node: n, where: wh, path: p}); err != nil {
				return err
			}
		case fs.ModeSymlink:
			fi, err := b.statSymlink(p)
			if err != nil {
				return err
			}
			n := &mfile{symlink: true}
			d.children[name] = &mnode{file: n}
			if err := b.submit(contentJob{node: n, where: wh, fi: fi}); err != nil {
				return err
			}
		case fs.ModeDir:
			sub, err := os.OpenFile(p, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				return fmt.Errorf("reading directory: %w", err)
			}
			meta, err := b.statDir(sub, p)
			if err != nil {
				sub.Close()
				return err
			}
			child := newMdir(meta)
			d.children[name] = &mnode{dir: child}
			if err := b.walkDir(ctx, sub, child, p, wh); err != nil {
				return err
			}
		default:
			return fmt.Errorf("%s: not a regular file or symlink: %w", p, errdefs.ErrInvalid)
		}
	}
	return nil
}

// statSymlink reads a symlink's metadata and target.
func (b *treeBuilder) statSymlink(p string) (ostree.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return ostree.FileInfo{}, fmt.Errorf("stat %s: %w", p, err)
	}
	target, err := os.Readlink(p)
	if err != nil {
		return ostree.FileInfo{}, fmt.Errorf("reading symlink: %w", err)
	}
	if !utf8.ValidString(target) {
		return ostree.FileInfo{}, fmt.Errorf("%s: symlink target %q is not valid UTF-8: %w", p, target, errdefs.ErrInvalid)
	}
	fi := ostree.FileInfo{UID: st.Uid, GID: st.Gid, Mode: st.Mode, SymlinkTarget: target}
	if !b.noX && !b.canon {
		names, values, err := fsutil.Llistxattr(p)
		if err != nil {
			return fi, err
		}
		for i, n := range names {
			fi.Xattrs = append(fi.Xattrs, ostree.Xattr{Name: n, Value: values[i]})
		}
		fi.Xattrs = ostree.CanonicalXattrs(fi.Xattrs)
	}
	fi = b.fileInfo(fi)
	return fi, checkFileInfo(fi, p)
}

// fdXattrs reads all extended attributes of an open file in canonical
// order (docs/formats/objects.md). buf is a scratch buffer for the name list, returned
// for reuse. A filesystem without xattrs yields none.
func fdXattrs(fd int, buf []byte) ([]ostree.Xattr, []byte, error) {
	if buf == nil {
		buf = make([]byte, 1024)
	}
	var n int
	for {
		var err error
		n, err = unix.Flistxattr(fd, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Flistxattr(fd, nil)
			if err != nil {
				return nil, buf, fmt.Errorf("listing xattrs: %w", err)
			}
			buf = make([]byte, 2*sz+1)
			continue
		}
		if errors.Is(err, unix.ENOTSUP) {
			return nil, buf, nil
		}
		if err != nil {
			return nil, buf, fmt.Errorf("listing xattrs: %w", err)
		}
		break
	}
	if n == 0 {
		return nil, buf, nil
	}
	var xs []ostree.Xattr
	for _, name := range splitNames(buf[:n]) {
		v, err := fgetxattr(fd, name)
		if errors.Is(err, unix.ENODATA) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, buf, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		xs = append(xs, ostree.Xattr{Name: name, Value: v})
	}
	return ostree.CanonicalXattrs(xs), buf, nil
}

func fgetxattr(fd int, name string) ([]byte, error) {
	v := make([]byte, 256)
	for {
		n, err := unix.Fgetxattr(fd, name, v)
		if errors.Is(err, unix.ERANGE) {
			sz, err := unix.Fgetxattr(fd, name, nil)
			if err != nil {
				return nil, err
			}
			v = make([]byte, 2*sz+1)
			continue
		}
		if err != nil {
			return nil, err
		}
		return v[:n:n], nil
	}
}

func splitNames(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != 0 {
			i++
		}
		if i > 0 {
			out = append(out, string(b[:i]))
		}
		if i < len(b) {
			i++
		}
		b = b[i:]
	}
	return out
}
