package repo

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// MaxMetadataSize bounds metadata objects, like OSTREE_MAX_METADATA_SIZE.
const MaxMetadataSize = 10 << 20

// metadataObjectMode is the on-disk mode of every metadata object, and
// archiveObjectMode that of an archive repository's content objects: both
// world-readable, as libostree writes them (docs/repository.md, "Object
// modes"). Content objects of the bare modes carry their file's mode.
const (
	metadataObjectMode = 0o644
	archiveObjectMode  = 0o644
)

// ObjectPath returns the path of a loose object in objects/.
func (r *Repo) ObjectPath(n ostree.ObjectName) string {
	return filepath.Join(r.path, "objects", ostree.LoosePath(n.Checksum, n.Type, r.mode == ModeArchive))
}

// HasObject reports whether the object is stored in objects/.
func (r *Repo) HasObject(n ostree.ObjectName) (bool, error) {
	_, err := os.Lstat(r.ObjectPath(n))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

func notFound(n ostree.ObjectName, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("object %s: %w", n, errdefs.ErrNotFound)
	}
	return fmt.Errorf("object %s: %w", n, err)
}

// ReadMetadata reads a metadata object and verifies it: a commit, dirtree
// or dirmeta must hash to its name and be a normal-form GVariant of its
// type, else the error is errdefs.ErrCorrupt naming the object. Other
// metadata (detached commit metadata, tombstones) is named after its commit,
// not its own hash, and is only bounded in size.
func (r *Repo) ReadMetadata(typ ostree.ObjectType, c ostree.Checksum) ([]byte, error) {
	if !verifiable(typ) {
		return r.ReadMetadataUnverified(typ, c)
	}
	return r.readMetaChecked(typ, c)
}

// ReadMetadataUnverified reads a metadata object's bytes and checks only
// its size bound. It is the fast path for a caller that verifies the bytes
// itself right after reading them (pull compares them with what it
// expects); everything else uses ReadMetadata.
func (r *Repo) ReadMetadataUnverified(typ ostree.ObjectType, c ostree.Checksum) ([]byte, error) {
	return readMetadataAt(r.ObjectPath(ostree.ObjectName{Checksum: c, Type: typ}), ostree.ObjectName{Checksum: c, Type: typ})
}

func readMetadataAt(path string, n ostree.ObjectName) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, notFound(n, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxMetadataSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading object %s: %w", n, err)
	}
	if len(b) > MaxMetadataSize {
		return nil, fmt.Errorf("object %s is larger than %d bytes: %w", n, MaxMetadataSize, errdefs.ErrCorrupt)
	}
	return b, nil
}

// ReadCommit reads, verifies (see ReadMetadata) and parses a commit object.
func (r *Repo) ReadCommit(c ostree.Checksum) (*ostree.Commit, error) {
	return r.readCommitChecked(c)
}

// ReadDirTree reads, verifies (see ReadMetadata) and parses a dirtree
// object.
func (r *Repo) ReadDirTree(c ostree.Checksum) (ostree.DirTree, error) {
	return r.readDirTreeChecked(c)
}

// ReadDirMeta reads, verifies (see ReadMetadata) and parses a dirmeta
// object.
func (r *Repo) ReadDirMeta(c ostree.Checksum) (ostree.DirMeta, error) {
	return r.readDirMetaChecked(c)
}

// ReadCommitMeta returns a commit's detached metadata, or nil if it has none.
func (r *Repo) ReadCommitMeta(c ostree.Checksum) ([]byte, error) {
	b, err := r.ReadMetadataUnverified(ostree.ObjectCommitMeta, c) // named by its commit: nothing to hash
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	return b, err
}

// Content is an open content object: its metadata and, for regular
// files, a reader of its payload. Close it.
type Content struct {
	Info ostree.FileInfo
	Size int64 // payload size; 0 for symlinks
	io.Reader
	closers []io.Closer
}

// Close releases the object.
func (c *Content) Close() error {
	var errs []error
	for _, cl := range c.closers {
		errs = append(errs, cl.Close())
	}
	return errors.Join(errs...)
}

var inflaters = sync.Pool{}

var archiveReaders = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 64<<10) }}

// OpenContent opens a content object and decodes its metadata according
// to the repository mode.
func (r *Repo) OpenContent(c ostree.Checksum) (*Content, error) {
	n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
	return openContentAt(r.mode, r.ObjectPath(n), n)
}

// ContentInfo returns a content object's metadata and payload size, as OpenContent does,
// without reading into its payload: in an archive repository, the header alone.
func (r *Repo) ContentInfo(c ostree.Checksum) (ostree.FileInfo, int64, error) {
	n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
	if r.mode != ModeArchive {
		ct, err := r.OpenContent(c)
		if err != nil {
			return ostree.FileInfo{}, 0, err
		}
		defer ct.Close()
		return ct.Info, ct.Size, nil
	}
	f, err := os.Open(r.ObjectPath(n))
	if err != nil {
		return ostree.FileInfo{}, 0, notFound(n, err)
	}
	defer f.Close()
	h, err := ostree.ReadFramedHeader(f)
	if err != nil {
		return ostree.FileInfo{}, 0, fmt.Errorf("object %s: %w", n, err)
	}
	fi, size, err := ostree.ParseArchiveHeader(h)
	if err != nil {
		return ostree.FileInfo{}, 0, fmt.Errorf("object %s: %w", n, err)
	}
	if fi.IsSymlink() {
		return fi, 0, nil
	}
	if size > 1<<46 {
		return ostree.FileInfo{}, 0, fmt.Errorf("object %s: size %d: %w", n, size, errdefs.ErrCorrupt)
	}
	return fi, int64(size), nil
}

func openContentAt(mode Mode, path string, n ostree.ObjectName) (*Content, error) {
	if mode == ModeArchive {
		return openArchive(path, n)
	}
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return nil, notFound(n, err)
	}
	out := &Content{Reader: bytes.NewReader(nil)}
	switch mode {
	case ModeBareUser:
		meta, err := fsutil.Lgetxattr(path, "user.ostreemeta")
		if err != nil {
			return nil, fmt.Errorf("object %s: reading user.ostreemeta: %w: %w", n, errdefs.ErrCorrupt, err)
		}
		if out.Info, err = ostree.ParseFileMeta(meta); err != nil {
			return nil, fmt.Errorf("object %s: %w", n, err)
		}
		if out.Info.IsSymlink() {
			b, err := os.ReadFile(path)
			if err != nil {
				return nil, fmt.Errorf("object %s: %w", n, err)
			}
			out.Info.SymlinkTarget = strings.TrimSuffix(string(b), "\x00")
			return out, out.Info.Validate()
		}
	case ModeBare, ModeBareUserOnly:
		out.Info = ostree.FileInfo{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
		if mode == ModeBareUserOnly {
			out.Info.UID, out.Info.GID = 0, 0
		}
		if out.Info.IsSymlink() {
			t, err := os.Readlink(path)
			if err != nil {
				return nil, fmt.Errorf("object %s: %w", n, err)
			}
			out.Info.SymlinkTarget = t
		}
		if mode == ModeBare {
			xs, err := readXattrs(path)
			if err != nil {
				return nil, fmt.Errorf("object %s: %w", n, err)
			}
			out.Info.Xattrs = xs
		}
		if out.Info.IsSymlink() {
			return out, out.Info.Validate()
		}
	}
	if err := out.Info.Validate(); err != nil {
		return nil, fmt.Errorf("object %s: %w", n, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, notFound(n, err)
	}
	out.Reader, out.Size, out.closers = f, st.Size, []io.Closer{f}
	return out, nil
}

func openArchive(path string, n ostree.ObjectName) (*Content, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, notFound(n, err)
	}
	// The read buffers are reused: a walk or an export opens every object of a commit.
	br := archiveReaders.Get().(*bufio.Reader)
	br.Reset(f)
	released := false
	release := closerFunc(func() error {
		if !released {
			released = true
			br.Reset(nil)
			archiveReaders.Put(br)
		}
		return nil
	})
	h, err := ostree.ReadFramedHeader(br)
	if err != nil {
		f.Close()
		release()
		return nil, fmt.Errorf("object %s: %w", n, err)
	}
	fi, size, err := ostree.ParseArchiveHeader(h)
	if err != nil {
		f.Close()
		release()
		return nil, fmt.Errorf("object %s: %w", n, err)
	}
	out := &Content{Info: fi, closers: []io.Closer{f, release}}
	if fi.IsSymlink() {
		out.Reader = bytes.NewReader(nil)
		return out, nil
	}
	if size > 1<<46 {
		f.Close()
		release()
		return nil, fmt.Errorf("object %s: size %d: %w", n, size, errdefs.ErrCorrupt)
	}
	var zr io.ReadCloser
	if p, ok := inflaters.Get().(io.ReadCloser); ok {
		p.(flate.Resetter).Reset(br, nil)
		zr = p
	} else {
		zr = flate.NewReader(br)
	}
	out.Size = int64(size)
	out.Reader = &exactReader{r: zr, left: int64(size), name: n}
	// The inflater goes back to its pool before the buffer it reads from.
	putInflater := false
	out.closers = []io.Closer{f, closerFunc(func() error {
		if !putInflater {
			putInflater = true
			inflaters.Put(zr)
		}
		return nil
	}), release}
	return out, nil
}

type closerFunc func() error

func (f closerFunc) Close() error { return f() }

// exactReader yields exactly the declared payload size and reports a
// short or long stream as corruption instead of silently truncating.
type exactReader struct {
	r    io.Reader
	left int64
	name ostree.ObjectName
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left <= 0 {
		var one [1]byte
		if n, _ := e.r.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("object %s: payload longer than its header says: %w", e.name, errdefs.ErrCorrupt)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		return n, fmt.Errorf("object %s: payload truncated: %w", e.name, errdefs.ErrCorrupt)
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("object %s: %w: %w", e.name, errdefs.ErrCorrupt, err)
	}
	return n, nil
}

// readXattrs reads a file's xattrs in canonical order.
func readXattrs(path string) ([]ostree.Xattr, error) {
	names, values, err := fsutil.Llistxattr(path)
	if err != nil {
		return nil, err
	}
	xs := make([]ostree.Xattr, len(names))
	for i := range names {
		xs[i] = ostree.Xattr{Name: names[i], Value: values[i]}
	}
	return ostree.CanonicalXattrs(xs), nil
}

// ListObjects calls fn for every loose object in objects/, in directory
// order. Unknown files are skipped.
func (r *Repo) ListObjects(fn func(ostree.ObjectName) error) error {
	root := filepath.Join(r.path, "objects")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return fmt.Errorf("listing objects: %w", err)
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return fmt.Errorf("listing objects: %w", err)
		}
		for _, e := range ents {
			n, ok := parseLooseName(d.Name(), e.Name())
			if !ok {
				continue
			}
			if err := fn(n); err != nil {
				return err
			}
		}
	}
	return nil
}

func parseLooseName(dir, file string) (ostree.ObjectName, bool) {
	dot := strings.IndexByte(file, '.')
	if dot != 62 {
		return ostree.ObjectName{}, false
	}
	c, err := ostree.ParseChecksum(dir + file[:dot])
	if err != nil {
		return ostree.ObjectName{}, false
	}
	ext := file[dot+1:]
	if ext == "filez" {
		ext = "file"
	}
	t, err := ostree.ParseObjectType(ext)
	if err != nil {
		return ostree.ObjectName{}, false
	}
	return ostree.ObjectName{Checksum: c, Type: t}, true
}
