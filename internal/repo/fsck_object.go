package repo

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// listLoose lists objects/ in directory order (see walkLoose).
func (r *Repo) listLoose() ([]looseObject, error) {
	var out []looseObject
	err := r.walkLoose(func(o looseObject) error {
		out = append(out, o)
		return nil
	})
	return out, err
}

// walkLoose calls fn for every loose object in objects/, in directory
// order. Files that are not loose objects of this repository's mode
// (other suffixes, temp files) are not objects and are skipped, as
// libostree skips them.
func (r *Repo) walkLoose(fn func(looseObject) error) error {
	root := filepath.Join(r.path, "objects")
	subs, err := readDirUnsorted(root)
	if err != nil {
		return fmt.Errorf("listing objects: %w", err)
	}
	for _, sub := range subs {
		if len(sub) != 2 {
			continue
		}
		dir := filepath.Join(root, sub)
		names, err := readDirUnsorted(dir)
		if errors.Is(err, unix.ENOTDIR) {
			continue
		}
		if err != nil {
			return fmt.Errorf("listing objects: %w", err)
		}
		for _, file := range names {
			n, ok := parseLooseName(sub, file)
			if !ok || !r.ownSuffix(n, file) {
				continue
			}
			if err := fn(looseObject{name: n, path: filepath.Join(dir, file)}); err != nil {
				return err
			}
		}
	}
	return nil
}

// ownSuffix tells whether file is how this repository's mode names n:
// content objects are .filez in archive repositories and .file otherwise.
func (r *Repo) ownSuffix(n ostree.ObjectName, file string) bool {
	if n.Type != ostree.ObjectFile {
		return true
	}
	return strings.HasSuffix(file, ".filez") == (r.mode == ModeArchive)
}

// readDirNames lists a directory without sorting it.
func readDirUnsorted(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// classify maps an object-check error to the kind of problem it is.
func classifyFsckError(err error) FsckProblemKind {
	var re *objectReadError
	switch {
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, errdefs.ErrNotFound):
		return FsckMissing
	case errors.As(err, &re):
		return FsckUnreadable
	case errors.Is(err, errdefs.ErrCorrupt) || errors.Is(err, errdefs.ErrInvalid):
		return FsckCorrupt
	}
	return FsckUnreadable
}

// objectReadError marks a failing read(2) or getxattr(2) of an existing object,
// as opposed to bytes that were read and are wrong.
type objectReadError struct{ err error }

func (e *objectReadError) Error() string { return e.err.Error() }
func (e *objectReadError) Unwrap() error { return e.err }

// checkResult is what checking one object yields.
type checkResult struct {
	bytes  int64
	err    error
	tree   ostree.DirTree
	commit *ostree.Commit
	data   []byte // commit bytes
}

// objectChecker verifies objects; each worker owns one, so its buffers
// and decompressor are reused from object to object without locking.
type objectChecker struct {
	mode Mode
	h    hash.Hash
	buf  []byte
	meta []byte
	br   *bufio.Reader
	zr   io.ReadCloser
	fd   rawFDReader
}

func newObjectChecker(mode Mode) *objectChecker {
	c := &objectChecker{mode: mode, h: sha256.New(), buf: make([]byte, 256<<10), meta: make([]byte, 0, 64<<10)}
	c.br = bufio.NewReaderSize(&c.fd, 128<<10)
	return c
}

// rawFDReader reads a file descriptor with plain system calls (os.File's
// poller registration costs more than reading a small object) and keeps
// the first read error apart from decoding errors.
type rawFDReader struct {
	fd  int
	n   int64
	err error
}

func (f *rawFDReader) reset(fd int) { f.fd, f.n, f.err = fd, 0, nil }

func (f *rawFDReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, err := unix.Read(f.fd, p)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			f.err = &objectReadError{err}
			return 0, f.err
		}
		if n == 0 {
			return 0, io.EOF
		}
		f.n += int64(n)
		return n, nil
	}
}

// check verifies one object. Errors do not name the object: the problem
// that carries them does.
func (c *objectChecker) check(o looseObject) checkResult {
	var res checkResult
	if o.name.Type.IsMeta() || o.name.Type == ostree.ObjectTombstoneCommit {
		res = c.checkMeta(o)
	} else if o.name.Type == ostree.ObjectPayloadLink {
		res = checkPayloadLink(o)
	} else {
		res = c.checkContent(o)
	}
	return res
}

var (
	fsckDirTreeType = gvariant.MustType("(a(say)a(sayay))")
	fsckDirMetaType = gvariant.MustType("(uuua(ayay))")
	fsckCommitType  = gvariant.MustType("(a{sv}aya(say)sstayay)")
)

func (c *objectChecker) checkMeta(o looseObject) checkResult {
	b, err := c.readMeta(o.path)
	res := checkResult{bytes: int64(len(b)), err: err}
	if err != nil {
		return res
	}
	if o.name.Type == ostree.ObjectCommitMeta || o.name.Type == ostree.ObjectTombstoneCommit {
		// Detached metadata and tombstones are keyed by a commit, not
		// hashed (docs/formats/objects.md); they only have to parse.
		if _, err := ostree.ParseMetadata(b); err != nil {
			res.err = fmt.Errorf("not an a{sv}: %w: %w", errdefs.ErrCorrupt, err)
		}
		return res
	}
	if got := ostree.MetadataChecksum(b); got != o.name.Checksum {
		res.err = fmt.Errorf("content hashes to %s: %w", got, errdefs.ErrCorrupt)
		return res
	}
	switch o.name.Type {
	case ostree.ObjectDirTree:
		if !gvariant.IsNormal(fsckDirTreeType, b) {
			res.err = fmt.Errorf("not a normal-form dirtree: %w", errdefs.ErrCorrupt)
		} else {
			res.tree, res.err = ostree.ParseDirTree(b)
		}
	case ostree.ObjectDirMeta:
		if !gvariant.IsNormal(fsckDirMetaType, b) {
			res.err = fmt.Errorf("not a normal-form dirmeta: %w", errdefs.ErrCorrupt)
		} else {
			_, res.err = ostree.ParseDirMeta(b)
		}
	case ostree.ObjectCommit:
		if !gvariant.IsNormal(fsckCommitType, b) {
			res.err = fmt.Errorf("not a normal-form commit: %w", errdefs.ErrCorrupt)
		} else if res.commit, res.err = ostree.ParseCommit(b); res.err == nil {
			res.data = bytes.Clone(b)
		}
	}
	return res
}

// readMeta reads a whole metadata object into the checker's buffer; the
// result is valid until the next call.
func (c *objectChecker) readMeta(path string) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, objectOpenError(err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &objectReadError{err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, fmt.Errorf("not a regular file (mode %#o): %w", st.Mode, errdefs.ErrCorrupt)
	}
	if st.Size > MaxMetadataSize {
		return nil, fmt.Errorf("larger than %d bytes: %w", MaxMetadataSize, errdefs.ErrCorrupt)
	}
	c.fd.reset(fd)
	b := bytes.NewBuffer(c.meta[:0])
	if _, err := b.ReadFrom(io.LimitReader(&c.fd, MaxMetadataSize+1)); err != nil {
		return nil, err
	}
	c.meta = b.Bytes()
	if len(c.meta) > MaxMetadataSize {
		return nil, fmt.Errorf("larger than %d bytes: %w", MaxMetadataSize, errdefs.ErrCorrupt)
	}
	return c.meta, nil
}

// openError classifies a failed open of a listed object: gone is missing,
// a symlink where a file belongs is corruption, the rest is unreadable.
func objectOpenError(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %w", errdefs.ErrNotFound, err)
	case errors.Is(err, unix.ELOOP):
		return fmt.Errorf("is a symlink: %w", errdefs.ErrCorrupt)
	}
	return &objectReadError{err}
}

func checkPayloadLink(o looseObject) checkResult {
	var st unix.Stat_t
	if err := unix.Lstat(o.path, &st); err != nil {
		return checkResult{err: objectOpenError(err)}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return checkResult{err: fmt.Errorf("payload link is not a symlink: %w", errdefs.ErrCorrupt)}
	}
	return checkResult{}
}

// checkContent recomputes a content object's checksum from what its mode
// stores (docs/formats/repository.md) and compares it with the name.
func (c *objectChecker) checkContent(o looseObject) checkResult {
	fd, err := unix.Open(o.path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) && (c.mode == ModeBare || c.mode == ModeBareUserOnly) {
		return c.checkSymlink(o)
	}
	if err != nil {
		return checkResult{err: objectOpenError(err)}
	}
	defer unix.Close(fd)
	c.fd.reset(fd)
	var fi ostree.FileInfo
	switch c.mode {
	case ModeArchive:
		err = c.hashArchive()
	case ModeBareUser:
		if fi, err = c.bareUserInfo(fd); err == nil {
			err = c.hashPayload(fi)
		}
	default:
		if fi, err = c.bareInfo(fd); err == nil {
			err = c.hashPayload(fi)
		}
	}
	res := checkResult{bytes: c.fd.n, err: err}
	if c.fd.err != nil {
		res.err = c.fd.err // the read failed, whatever the decoder made of it
	}
	if res.err != nil {
		return res
	}
	var got ostree.Checksum
	c.h.Sum(got[:0])
	if got != o.name.Checksum {
		res.err = fmt.Errorf("content hashes to %s: %w", got, errdefs.ErrCorrupt)
	}
	return res
}

// hashArchive decodes a .filez object (docs/formats/objects.md) into c.h.
func (c *objectChecker) hashArchive() error {
	c.br.Reset(&c.fd)
	h, err := ostree.ReadFramedHeader(c.br)
	if err != nil {
		return err
	}
	fi, size, err := ostree.ParseArchiveHeader(h)
	if err != nil {
		return err
	}
	c.h.Reset()
	c.h.Write(ostree.FileHeader(fi))
	if fi.IsSymlink() {
		return nil
	}
	if c.zr == nil {
		c.zr = flate.NewReader(c.br)
	} else if err := c.zr.(flate.Resetter).Reset(c.br, nil); err != nil {
		return fmt.Errorf("inflating payload: %w: %w", errdefs.ErrCorrupt, err)
	}
	// WriteTo hashes straight out of the inflater's window, saving a copy
	// of every byte; a stream longer than the header says is hashed to its
	// end and refused below.
	n, err := c.zr.(io.WriterTo).WriteTo(c.h)
	if err != nil {
		return fmt.Errorf("inflating payload after %d bytes: %w: %w", n, errdefs.ErrCorrupt, err)
	}
	if uint64(n) != size {
		return fmt.Errorf("payload is %d bytes, its header says %d: %w", n, size, errdefs.ErrCorrupt)
	}
	return nil
}

// bareUserInfo reads a bare-user object's metadata from user.ostreemeta;
// symlinks are regular files holding the target and a NUL (docs/formats/repository.md).
func (c *objectChecker) bareUserInfo(fd int) (ostree.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ostree.FileInfo{}, &objectReadError{err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ostree.FileInfo{}, fmt.Errorf("not a regular file (mode %#o): %w", st.Mode, errdefs.ErrCorrupt)
	}
	meta, err := fgetxattrBuf(fd, "user.ostreemeta", c.buf)
	if errors.Is(err, unix.ENODATA) {
		return ostree.FileInfo{}, fmt.Errorf("no user.ostreemeta xattr: %w", errdefs.ErrCorrupt)
	}
	if err != nil {
		return ostree.FileInfo{}, &objectReadError{fmt.Errorf("reading user.ostreemeta: %w", err)}
	}
	fi, err := ostree.ParseFileMeta(meta)
	if err != nil {
		return fi, err
	}
	if fi.IsSymlink() {
		if st.Size > 64<<10 {
			return fi, fmt.Errorf("symlink object of %d bytes: %w", st.Size, errdefs.ErrCorrupt)
		}
		b, err := io.ReadAll(&c.fd)
		if err != nil {
			return fi, err
		}
		if len(b) < 2 || b[len(b)-1] != 0 || bytes.IndexByte(b[:len(b)-1], 0) >= 0 {
			return fi, fmt.Errorf("symlink object is not a NUL-terminated target: %w", errdefs.ErrCorrupt)
		}
		fi.SymlinkTarget = string(b[:len(b)-1])
	}
	return fi, fi.Validate()
}

// bareInfo reads a bare or bare-user-only regular-file object's metadata
// from the file itself.
func (c *objectChecker) bareInfo(fd int) (ostree.FileInfo, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return ostree.FileInfo{}, &objectReadError{err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ostree.FileInfo{}, fmt.Errorf("not a regular file or symlink (mode %#o): %w", st.Mode, errdefs.ErrCorrupt)
	}
	fi := ostree.FileInfo{Mode: st.Mode}
	if c.mode == ModeBare {
		fi.UID, fi.GID = st.Uid, st.Gid
		xs, err := fdXattrsCanonical(fd)
		if err != nil {
			return fi, &objectReadError{fmt.Errorf("reading xattrs: %w", err)}
		}
		fi.Xattrs = xs
	}
	return fi, fi.Validate()
}

// checkSymlink verifies a symlink object of a bare or bare-user-only
// repository.
func (c *objectChecker) checkSymlink(o looseObject) checkResult {
	var st unix.Stat_t
	if err := unix.Lstat(o.path, &st); err != nil {
		return checkResult{err: objectOpenError(err)}
	}
	target, err := os.Readlink(o.path)
	if err != nil {
		return checkResult{err: objectOpenError(err)}
	}
	fi := ostree.FileInfo{Mode: st.Mode, SymlinkTarget: target}
	if c.mode == ModeBare {
		fi.UID, fi.GID = st.Uid, st.Gid
		xs, err := readXattrs(o.path)
		if err != nil {
			return checkResult{err: &objectReadError{fmt.Errorf("reading xattrs: %w", err)}}
		}
		fi.Xattrs = xs
	}
	if err := fi.Validate(); err != nil {
		return checkResult{err: err}
	}
	got, _ := ostree.ContentChecksum(fi, nil)
	if got != o.name.Checksum {
		return checkResult{err: fmt.Errorf("content hashes to %s: %w", got, errdefs.ErrCorrupt)}
	}
	return checkResult{}
}

// hashPayload hashes the content stream of fi with the rest of the open
// object as its payload.
func (c *objectChecker) hashPayload(fi ostree.FileInfo) error {
	c.h.Reset()
	c.h.Write(ostree.FileHeader(fi))
	if fi.IsSymlink() {
		return nil
	}
	_, err := io.CopyBuffer(c.h, &c.fd, c.buf)
	return err
}

// fgetxattr reads one xattr of an open file, using buf when it is large
// enough.
func fgetxattrBuf(fd int, name string, buf []byte) ([]byte, error) {
	for {
		n, err := unix.Fgetxattr(fd, name, buf)
		if err == nil {
			return bytes.Clone(buf[:n]), nil
		}
		if !errors.Is(err, unix.ERANGE) {
			return nil, err
		}
		size, err := unix.Fgetxattr(fd, name, nil)
		if err != nil {
			return nil, err
		}
		buf = make([]byte, size)
	}
}

// fdXattrs reads all xattrs of an open file in canonical order.
func fdXattrsCanonical(fd int) ([]ostree.Xattr, error) {
	size, err := unix.Flistxattr(fd, nil)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil || size == 0 {
		return nil, err
	}
	list := make([]byte, size)
	if size, err = unix.Flistxattr(fd, list); err != nil {
		return nil, err
	}
	var xs []ostree.Xattr
	for _, name := range strings.Split(strings.TrimRight(string(list[:size]), "\x00"), "\x00") {
		v, err := fgetxattrBuf(fd, name, make([]byte, 256))
		if err != nil {
			return nil, fmt.Errorf("xattr %s: %w", name, err)
		}
		xs = append(xs, ostree.Xattr{Name: name, Value: v})
	}
	return ostree.CanonicalXattrs(xs), nil
}
