package repo

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// objectState is what a checkout learned about one content object, once,
// however many paths share it.
type objectState struct {
	once sync.Once
	err  error
	path string          // the loose object file
	link bool            // hardlink it: its on-disk metadata is what the checkout wants
	info ostree.FileInfo // valid if hasInfo
	// hasInfo: info was read (and, for symlinks, verified) while preparing.
	hasInfo bool
}

// object returns the prepared state of a content object that may be
// hardlinked.
func (c *checkout) object(sum ostree.Checksum) *objectState {
	c.mu.Lock()
	s := c.objects[sum]
	if s == nil {
		s = &objectState{}
		c.objects[sum] = s
	}
	c.mu.Unlock()
	s.once.Do(func() { s.err = c.prepareLink(sum, s) })
	return s
}

// prepareLink decides whether a content object can be hardlinked and, if
// it will be and verification is on, hashes it. It reads as little as the
// decision needs, with plain system calls: this runs once per object of
// the tree and dominates a hardlink checkout.
func (c *checkout) prepareLink(sum ostree.Checksum, s *objectState) error {
	n := ostree.ObjectName{Checksum: sum, Type: ostree.ObjectFile}
	s.path = c.r.ObjectPath(n)
	var st unix.Stat_t
	switch c.r.mode {
	case ModeBare:
		// The object file is the file, owner, mode and xattrs included.
		s.link = true
		if c.opts.NoVerifyLinks {
			return nil
		}
		if err := unix.Lstat(s.path, &st); err != nil {
			return notFound(n, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			ct, err := c.r.OpenContent(sum)
			if err != nil {
				return err
			}
			defer ct.Close()
			s.info, s.hasInfo = ct.Info, true
			return coCheckSum(coHeaderHash(ct.Info), sum)
		}
		if stamped(&st) {
			c.stats.stamped.Add(1)
			return nil
		}
		return c.verifyBare(n, s)
	case ModeBareUser:
		meta, err := coLgetxattr(s.path, "user.ostreemeta")
		if err != nil {
			return notFound(n, err)
		}
		if s.info, err = ostree.ParseFileMeta(meta); err != nil {
			return fmt.Errorf("object %s: %w", n, err)
		}
		if err := unix.Lstat(s.path, &st); err != nil {
			return notFound(n, err)
		}
		if s.info.IsSymlink() {
			// Stored as a regular file holding the target and a NUL.
			b, err := walkReadFile(s.path, n)
			if err != nil {
				return err
			}
			s.info.SymlinkTarget = strings.TrimSuffix(string(b), "\x00")
		}
	case ModeBareUserOnly:
		if err := unix.Lstat(s.path, &st); err != nil {
			return notFound(n, err)
		}
		s.info = ostree.FileInfo{Mode: st.Mode}
		if s.info.IsSymlink() {
			t, err := coReadlink(s.path)
			if err != nil {
				return fmt.Errorf("object %s: %w", n, err)
			}
			s.info.SymlinkTarget = t
		}
	}
	if c.r.mode != ModeBare {
		if err := s.info.Validate(); err != nil {
			return fmt.Errorf("object %s: %w", n, err)
		}
		s.hasInfo = true
		if s.info.IsSymlink() {
			// Symlinks are created, not linked; their whole object is
			// the header, so verifying it is free.
			return coCheckSum(coHeaderHash(s.info), sum)
		}
		// User mode links regular files whose on-disk permission bits are
		// the wanted ones; bare-user stores (mode & 0775) | 0400, so e.g.
		// 0666 or sticky files are copied.
		s.link = st.Mode&ostree.ModePermMask == coUserModePerm(s.info.Mode)
	}
	if !s.link || c.opts.NoVerifyLinks {
		return nil
	}
	if stamped(&st) {
		c.stats.stamped.Add(1)
		return nil
	}
	fd, err := unix.Open(s.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return notFound(n, err)
	}
	defer unix.Close(fd)
	h := coHeaderHash(s.info)
	if err := coHashFD(h, fd); err != nil {
		return fmt.Errorf("reading object %s: %w", n, err)
	}
	if err := coCheckSum(h, sum); err != nil {
		return err
	}
	c.stats.verified.Add(1)
	return nil
}

// stamped reports whether a regular object file still carries the
// verification stamp its repository gave it when it was stored: mtime
// exactly 0 (OSTREE_TIMESTAMP), set after its content was hashed. A write
// through any of its names sets the mtime to the time of the write, which
// is never 0 (the epoch); setting an arbitrary mtime takes the file's
// owner or CAP_FOWNER, who can rewrite the object anyway. A file that its
// group or others may write is never trusted this way: they could change
// its xattrs (which hold a bare-user object's metadata) without touching
// its mtime. docs/checkout-verification.md says what this covers.
func stamped(st *unix.Stat_t) bool {
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Mode&0o022 == 0 &&
		st.Mtim.Sec == 0 && st.Mtim.Nsec == 0
}

// verifyBare hashes a regular object of a bare repository, reading its
// metadata from the open file: owner and mode from fstat, xattrs from
// flistxattr (usually none).
func (c *checkout) verifyBare(n ostree.ObjectName, s *objectState) error {
	fd, err := unix.Open(s.path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return notFound(n, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("reading object %s: %w", n, err)
	}
	fi := ostree.FileInfo{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
	if fi.Xattrs, err = coFdXattrs(fd); err != nil {
		return fmt.Errorf("reading object %s: %w", n, err)
	}
	if err := fi.Validate(); err != nil {
		return fmt.Errorf("object %s: %w", n, err)
	}
	h := coHeaderHash(fi)
	if err := coHashFD(h, fd); err != nil {
		return fmt.Errorf("reading object %s: %w", n, err)
	}
	if err := coCheckSum(h, n.Checksum); err != nil {
		return err
	}
	c.stats.verified.Add(1)
	return nil
}

// coFdXattrs reads all xattrs of an open file in canonical order.
func coFdXattrs(fd int) ([]ostree.Xattr, error) {
	var small [1024]byte
	names := small[:]
	m, err := unix.Flistxattr(fd, names)
	for errors.Is(err, unix.ERANGE) {
		if m, err = unix.Flistxattr(fd, nil); err != nil {
			break
		}
		names = make([]byte, m+256)
		m, err = unix.Flistxattr(fd, names)
	}
	if errors.Is(err, unix.ENOTSUP) || m == 0 {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var xs []ostree.Xattr
	for _, name := range strings.Split(strings.TrimSuffix(string(names[:m]), "\x00"), "\x00") {
		v := make([]byte, 256)
		k, err := unix.Fgetxattr(fd, name, v)
		for errors.Is(err, unix.ERANGE) {
			if k, err = unix.Fgetxattr(fd, name, nil); err != nil {
				break
			}
			v = make([]byte, k+64)
			k, err = unix.Fgetxattr(fd, name, v)
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		xs = append(xs, ostree.Xattr{Name: name, Value: v[:k]})
	}
	return ostree.CanonicalXattrs(xs), nil
}

func coHeaderHash(fi ostree.FileInfo) hash.Hash {
	h := sha256.New()
	h.Write(ostree.FileHeader(fi))
	return h
}

func coHashFD(h hash.Hash, fd int) error {
	bp := coBufs.Get().(*[]byte)
	defer coBufs.Put(bp)
	for {
		m, err := unix.Read(fd, *bp)
		if err != nil {
			return err
		}
		if m == 0 {
			return nil
		}
		h.Write((*bp)[:m])
	}
}

// coLgetxattr reads an xattr that is normally small in one call.
func coLgetxattr(p, name string) ([]byte, error) {
	var buf [512]byte
	m, err := unix.Lgetxattr(p, name, buf[:])
	if errors.Is(err, unix.ERANGE) {
		return fsutil.Lgetxattr(p, name)
	}
	if err != nil {
		return nil, err
	}
	return append([]byte(nil), buf[:m]...), nil
}

func coReadlink(p string) (string, error) {
	for size := 256; ; size *= 4 {
		buf := make([]byte, size)
		m, err := unix.Readlink(p, buf)
		if err != nil {
			return "", err
		}
		if m < size {
			return string(buf[:m]), nil
		}
	}
}

// coUserModePerm is the permission a user-mode checkout gives a regular
// file: ostree 2022.7 drops setuid and setgid and makes it readable by
// its owner (a 0000 file becomes 0400, 0200 becomes 0600).
func coUserModePerm(mode uint32) uint32 {
	return mode&ostree.ModePermMask&^(unix.S_ISUID|unix.S_ISGID) | unix.S_IRUSR
}

func coCheckSum(h hash.Hash, want ostree.Checksum) error {
	var got ostree.Checksum
	h.Sum(got[:0])
	if got != want {
		return fmt.Errorf("object %s.file: content hashes to %s: %w", want, got, errdefs.ErrCorrupt)
	}
	return nil
}

var coBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// doFiles checks out a batch of files of one directory.
func (c *checkout) doFiles(ctx context.Context, j fileJob) {
	for _, f := range j.files {
		if ctx.Err() != nil {
			return
		}
		if err := c.checkoutFile(j.dir, f); err != nil {
			c.fail(fmt.Errorf("checking out %s: %w", joinTreePath(j.dir.path, f.Name), err))
			return
		}
		c.stats.files.Add(1)
		c.done(1)
	}
}

func (c *checkout) checkoutFile(d *coDir, f ostree.TreeFile) error {
	if c.linkable && !c.noLink.Load() {
		s := c.object(f.Checksum)
		if s.err != nil {
			return s.err
		}
		if s.hasInfo && s.info.IsSymlink() {
			return c.createSymlink(d, f.Name, s.info)
		}
		if s.link {
			err := unix.Linkat(unix.AT_FDCWD, s.path, d.fd, f.Name, 0)
			switch {
			case err == nil:
				c.stats.linked.Add(1)
				return nil
			case errors.Is(err, unix.EXDEV):
				c.noLink.Store(true) // another filesystem: copy the rest
			case errors.Is(err, unix.EMLINK), errors.Is(err, unix.EPERM):
				// Too many links to this object, or protected_hardlinks:
				// copy this one.
			case errors.Is(err, unix.ENOENT):
				return fmt.Errorf("object %s.file: %w", f.Checksum, errdefs.ErrNotFound)
			default:
				return fmt.Errorf("hardlinking object %s.file: %w", f.Checksum, err)
			}
		}
	}
	return c.copyFile(d, f)
}

// copyFile writes a file or symlink from its object's data, verifying the
// object's checksum on the way.
func (c *checkout) copyFile(d *coDir, f ostree.TreeFile) error {
	ct, err := c.r.OpenContent(f.Checksum)
	if err != nil {
		return err
	}
	defer ct.Close()
	fi := ct.Info
	h := coHeaderHash(fi)
	if fi.IsSymlink() {
		if err := coCheckSum(h, f.Checksum); err != nil {
			return err
		}
		return c.createSymlink(d, f.Name, fi)
	}
	fd, err := unix.Openat(d.fd, f.Name, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("creating file: %w", err)
	}
	defer unix.Close(fd)
	if err := coCopyHashed(fd, h, ct, f.Checksum); err != nil {
		return err
	}
	if err := coCheckSum(h, f.Checksum); err != nil {
		return err
	}
	mode := fi.Mode & ostree.ModePermMask
	if c.opts.UserMode {
		mode = coUserModePerm(fi.Mode)
	} else {
		if err := unix.Fchown(fd, int(fi.UID), int(fi.GID)); err != nil {
			return fmt.Errorf("setting owner of file: %w", err)
		}
		for _, x := range fi.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("setting xattr %s of file: %w", x.Name, err)
			}
		}
	}
	// After chown, which clears setuid and setgid.
	if err := unix.Fchmod(fd, mode); err != nil {
		return fmt.Errorf("setting mode of file: %w", err)
	}
	c.stats.copied.Add(1)
	return nil
}

// createSymlink creates a symlink from verified metadata.
func (c *checkout) createSymlink(d *coDir, name string, fi ostree.FileInfo) error {
	if err := unix.Symlinkat(fi.SymlinkTarget, d.fd, name); err != nil {
		return fmt.Errorf("creating symlink: %w", err)
	}
	if !c.opts.UserMode {
		if err := unix.Fchownat(d.fd, name, int(fi.UID), int(fi.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("setting owner of symlink: %w", err)
		}
		// There is no lsetxattrat; /proc/self/fd names the directory
		// without resolving anything below dest.
		p := "/proc/self/fd/" + strconv.Itoa(d.fd) + "/" + name
		for _, x := range fi.Xattrs {
			if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("setting xattr %s of symlink: %w", x.Name, err)
			}
		}
	}
	c.stats.copied.Add(1)
	return nil
}

// coCopyHashed copies an object's payload into fd and into h.
func coCopyHashed(fd int, h hash.Hash, r io.Reader, sum ostree.Checksum) error {
	bp := coBufs.Get().(*[]byte)
	defer coBufs.Put(bp)
	buf := *bp
	for {
		n, err := r.Read(buf)
		if n > 0 {
			h.Write(buf[:n])
			for b := buf[:n]; len(b) > 0; {
				w, werr := unix.Write(fd, b)
				if werr != nil {
					return fmt.Errorf("writing file: %w", werr)
				}
				b = b[w:]
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading object %s.file: %w", sum, err)
		}
	}
}
