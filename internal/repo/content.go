package repo

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// WriteContent stores a content object (regular file or symlink) read from
// payload, which must yield exactly size bytes (0 for symlinks), and
// returns its checksum. If want is non-nil the object is stored only when
// its checksum equals *want; otherwise nothing is stored and the error wraps
// errdefs.ErrCorrupt. The object is converted to the repository's mode on
// the way in (docs/formats/repository.md). Writing an object that exists is a no-op.
func (t *Txn) WriteContent(fi ostree.FileInfo, payload io.Reader, size int64, want *ostree.Checksum) (ostree.Checksum, error) {
	if err := fi.Validate(); err != nil {
		return ostree.Checksum{}, err
	}
	if fi.IsSymlink() {
		size, payload = 0, nil
	}
	if want != nil {
		if ok, err := t.HasObject(ostree.ObjectName{Checksum: *want, Type: ostree.ObjectFile}); ok || err != nil {
			return *want, err
		}
	}
	if t.r.mode == ModeBareUserOnly && fi.IsRegular() && fi.Mode&^(ostree.ModeTypeMask|0o775) != 0 {
		return ostree.Checksum{}, fmt.Errorf("mode %#o cannot be stored in a bare-user-only repository (only 0775 bits): %w", fi.Mode&ostree.ModePermMask, errdefs.ErrInvalid)
	}
	// Verify, then trust: the payload goes into a 0600 file that carries
	// no owner, mode or xattr of the object's, and only once it hashes to
	// want does it get them and its staged name. Metadata applied first
	// would give a bogus body (a setuid shell, a file capability) the
	// declared privileges for as long as it exists, which is long enough
	// for a local user holding a descriptor to it (docs/threat-model.md).
	hw := newHashWriter(ostree.FileHeader(fi))
	symlink := fi.IsSymlink() && t.r.mode != ModeArchive && t.r.mode != ModeBareUser
	if symlink {
		// A symlink's checksum is its header alone: check it before
		// anything exists on disk.
		c := hw.sum()
		if want != nil && c != *want {
			return c, fmt.Errorf("content object %s: content hashes to %s: %w", *want, c, errdefs.ErrCorrupt)
		}
		n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
		if ok, err := t.HasObject(n); ok || err != nil {
			return c, err
		}
		tmp, err := t.writeSymlink(fi)
		if err != nil {
			return c, err
		}
		return c, t.place(tmp, n)
	}
	var f *rawFile
	var err error
	if t.r.mode == ModeArchive {
		f, err = t.writeArchive(fi, payload, size, hw)
	} else {
		f, err = t.writeBare(fi, payload, size, hw)
	}
	if err != nil {
		return ostree.Checksum{}, err
	}
	c := hw.sum()
	if want != nil && c != *want {
		f.discard()
		return c, fmt.Errorf("content object %s: content hashes to %s: %w", *want, c, errdefs.ErrCorrupt)
	}
	n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
	if want == nil {
		// (With want, this was asked before writing; an object another
		// writer staged meanwhile wins in placeFile.)
		if ok, err := t.HasObject(n); ok || err != nil {
			f.discard()
			return c, err
		}
	}
	return c, t.keepContent(f, fi, n, size)
}

// keepContent gives a verified content object file its metadata (see
// finishContent) and its staged name, and counts its size toward the
// transaction's background writeback.
func (t *Txn) keepContent(f *rawFile, fi ostree.FileInfo, n ostree.ObjectName, size int64) error {
	if err := t.finishContent(f.fd, fi); err != nil {
		f.discard()
		return fmt.Errorf("content object %s: %w", n.Checksum, err)
	}
	if err := t.placeFile(f, n); err != nil {
		return err
	}
	t.stagedBytes(size)
	return nil
}

// copyExact copies exactly size bytes from r into w and checks that r
// ends there: a file that changes while it is committed is an error, not
// a silently wrong object.
func copyExact(w io.Writer, r io.Reader, size int64) error {
	if r == nil {
		return nil
	}
	n, err := io.CopyN(w, r, size)
	if err == io.EOF || (err == nil && n < size) {
		return fmt.Errorf("payload ended after %d of %d bytes: %w", n, size, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		return err
	}
	var one [1]byte
	if m, _ := io.ReadFull(r, one[:]); m > 0 {
		return fmt.Errorf("payload longer than %d bytes: %w", size, errdefs.ErrFailedPrecondition)
	}
	return nil
}

var deflaters sync.Map // level -> *sync.Pool

func getDeflater(level int, w io.Writer) *flate.Writer {
	p, _ := deflaters.LoadOrStore(level, &sync.Pool{})
	if fw, ok := p.(*sync.Pool).Get().(*flate.Writer); ok {
		fw.Reset(w)
		return fw
	}
	fw, err := flate.NewWriter(w, level)
	if err != nil {
		panic("internal error: deflate level: " + err.Error())
	}
	return fw
}

func putDeflater(level int, fw *flate.Writer) {
	p, _ := deflaters.Load(level)
	p.(*sync.Pool).Put(fw)
}

// writeArchive writes a .filez object into a new 0600 object file (see
// Txn.createTemp) and returns it open.
func (t *Txn) writeArchive(fi ostree.FileInfo, payload io.Reader, size int64, hw *hashWriter) (*rawFile, error) {
	f, err := t.createTemp()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*rawFile, error) {
		f.discard()
		return nil, err
	}
	bw := bufWriters.Get().(*bufio.Writer)
	bw.Reset(f)
	defer bufWriters.Put(bw)
	bw.Write(ostree.ArchiveHeader(fi, uint64(size)))
	if fi.IsRegular() {
		fw := getDeflater(t.r.zlibLevel, bw)
		err := copyExact(io.MultiWriter(hw, fw), payload, size)
		if err == nil {
			err = fw.Close()
		}
		putDeflater(t.r.zlibLevel, fw)
		if err != nil {
			return fail(fmt.Errorf("writing content object: %w", err))
		}
	}
	if err := bw.Flush(); err != nil {
		return fail(fmt.Errorf("writing content object: %w", err))
	}
	return f, nil
}

// writeBare writes the payload of a regular-file object for the bare
// modes, or a bare-user symlink (a regular file holding the target and a
// NUL), into a new 0600 object file (see Txn.createTemp) and returns it
// open. The object's metadata is not applied: see finishContent.
func (t *Txn) writeBare(fi ostree.FileInfo, payload io.Reader, size int64, hw *hashWriter) (*rawFile, error) {
	f, err := t.createTemp()
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*rawFile, error) {
		f.discard()
		return nil, err
	}
	if fi.IsSymlink() {
		if _, err := f.Write([]byte(fi.SymlinkTarget + "\x00")); err != nil {
			return fail(fmt.Errorf("writing content object: %w", err))
		}
		return f, nil
	}
	if payload == nil {
		return f, nil
	}
	// The payload goes from the reader into one buffer, is hashed there and
	// written from there: no copy through a bufio.Writer, and one write
	// system call per 256 KiB.
	buf := streamBufs.Get().(*[]byte)
	err = copyHashed(f, payload, size, hw, *buf)
	streamBufs.Put(buf)
	if err != nil {
		return fail(fmt.Errorf("writing content object: %w", err))
	}
	return f, nil
}

// streamBufs are the buffers writeBare streams payloads through.
var streamBufs = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// finishContent gives a verified object file the metadata its mode stores
// (docs/formats/repository.md): an archive object is 0644; a bare one gets its owner, xattrs
// and mode, in that order because chown clears setuid bits.
func (t *Txn) finishContent(fd int, fi ostree.FileInfo) error {
	var err error
	switch t.r.mode {
	case ModeArchive:
		if err := unix.Fchmod(fd, archiveObjectMode); err != nil {
			return fmt.Errorf("setting mode: %w", err)
		}
		return nil
	case ModeBare:
		if err := unix.Fchown(fd, int(fi.UID), int(fi.GID)); err != nil {
			return fmt.Errorf("setting owner: %w", err)
		}
		for _, x := range fi.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("setting xattr %s: %w", x.Name, err)
			}
		}
		err = unix.Fchmod(fd, fi.Mode&ostree.ModePermMask)
	case ModeBareUser:
		if err := unix.Fsetxattr(fd, "user.ostreemeta", ostree.FileMeta(fi), 0); err != nil {
			return fmt.Errorf("setting user.ostreemeta (does the filesystem support user xattrs?): %w", err)
		}
		mode := uint32(0o644)
		if fi.IsRegular() {
			mode = fi.Mode&0o775 | 0o400
		}
		err = unix.Fchmod(fd, mode)
	case ModeBareUserOnly:
		err = unix.Fchmod(fd, fi.Mode&ostree.ModePermMask)
	}
	if err != nil {
		return fmt.Errorf("setting mode: %w", err)
	}
	// All bare modes give content objects mtime 0 (OSTREE_TIMESTAMP).
	if err := unix.Futimes(fd, []unix.Timeval{{}, {}}); err != nil {
		return fmt.Errorf("setting mtime: %w", err)
	}
	return nil
}

func (t *Txn) writeSymlink(fi ostree.FileInfo) (string, error) {
	// A symlink cannot be an anonymous file: it is made under a fresh
	// name in the staging directory (0700, so no other user reaches it).
	var name string
	for {
		name = t.dir + "/.tmp-l" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(tempSeq.Add(1), 10)
		err := unix.Symlink(fi.SymlinkTarget, name)
		if err == unix.EEXIST {
			continue // left by an earlier process with the same pid
		}
		if err != nil {
			return "", fmt.Errorf("writing symlink object: %w", &os.PathError{Op: "symlink", Path: name, Err: err})
		}
		break
	}
	fail := func(err error) (string, error) {
		os.Remove(name)
		return "", err
	}
	if t.r.mode == ModeBare {
		if err := unix.Lchown(name, int(fi.UID), int(fi.GID)); err != nil {
			return fail(fmt.Errorf("setting owner of symlink object: %w", err))
		}
		for _, x := range fi.Xattrs {
			if err := unix.Lsetxattr(name, x.Name, x.Value, 0); err != nil {
				return fail(fmt.Errorf("setting xattr %s of symlink object: %w", x.Name, err))
			}
		}
	}
	return name, nil
}
