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
	"strconv"
	"sync/atomic"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// contentJob is one regular file or symlink for the workers. Exactly one
// payload source is set: path (read the file from disk), spool (a
// payload already copied to a temp file and hashed), or data (the payload
// in memory, from treeBuilder.bufs); symlinks have none.
type contentJob struct {
	node  *mfile
	where string // path in the tree, for errors
	fi    ostree.FileInfo
	path  string
	data  []byte
	spool *rawFile
	sum   ostree.Checksum // of the spool
	size  int64
}

// discard releases what a job holds when it will not be processed.
func (j contentJob) discard(b *treeBuilder) {
	if j.data != nil {
		b.putBuf(j.data)
	}
	if j.spool != nil {
		j.spool.discard()
	}
}

// worker is one goroutine of the pool with its own buffers.
type worker struct {
	b      *treeBuilder
	small  []byte // smallFileMax+1: a whole small file
	stream []byte // read buffer for streamed files
	out    bytes.Buffer
	h      hash.Hash
	xattr  []byte
}

func newWorker(b *treeBuilder) *worker {
	return &worker{b: b, h: sha256.New()}
}

func (w *worker) process(j contentJob) error {
	var err error
	switch {
	case j.path != "":
		err = w.fromPath(j)
	case j.spool != nil:
		err = w.fromSpool(j)
	case j.fi.IsSymlink():
		err = w.symlink(j)
	default:
		err = w.fromData(j)
		w.b.putBuf(j.data)
	}
	if err != nil {
		return err
	}
	if p := w.b.opts.Progress; p != nil {
		p.Add(1)
	}
	return nil
}

func (w *worker) claim(c ostree.Checksum) (bool, error) { return w.b.claim(c) }

func (w *worker) sum() ostree.Checksum {
	var c ostree.Checksum
	w.h.Sum(c[:0])
	return c
}

func (w *worker) symlink(j contentJob) error {
	w.b.symlinks.Add(1)
	c := sha256.Sum256(ostree.FileHeader(j.fi))
	cs := ostree.Checksum(c)
	j.node.sum = cs
	if ok, err := w.claim(cs); !ok || err != nil {
		return err
	}
	if _, err := w.b.t.WriteContent(j.fi, nil, 0, &cs); err != nil {
		return fmt.Errorf("storing symlink %s: %w", j.where, err)
	}
	w.b.contentWritten.Add(1)
	return nil
}

// fromData stores a payload held in memory.
func (w *worker) fromData(j contentJob) error {
	w.b.files.Add(1)
	w.b.bytes.Add(int64(len(j.data)))
	w.h.Reset()
	w.h.Write(ostree.FileHeader(j.fi))
	w.h.Write(j.data)
	c := w.sum()
	j.node.sum = c
	if ok, err := w.claim(c); !ok || err != nil {
		return err
	}
	return w.storeData(j.fi, c, j.data, j.where)
}

// fromPath reads a regular file of a directory source.
func (w *worker) fromPath(j contentJob) error {
	f, err := openNoFollow(j.path)
	if err != nil {
		return fmt.Errorf("reading file: %w", err)
	}
	defer f.close()
	fi, size, err := w.statFile(f, j.path)
	if err != nil {
		return err
	}
	fi = w.b.fileInfo(fi)
	if err := checkFileInfo(fi, j.where); err != nil {
		return err
	}
	w.b.files.Add(1)
	w.b.bytes.Add(size)
	if size <= smallFileMax {
		if w.small == nil {
			w.small = make([]byte, smallFileMax+1)
		}
		n, err := io.ReadFull(f, w.small[:size+1])
		switch {
		case err == io.ErrUnexpectedEOF && int64(n) == size, err == io.EOF && size == 0:
		case err == nil:
			return fmt.Errorf("%s grew while being committed: %w", j.path, errdefs.ErrFailedPrecondition)
		case err == io.ErrUnexpectedEOF:
			return fmt.Errorf("%s shrank while being committed: %w", j.path, errdefs.ErrFailedPrecondition)
		default:
			return fmt.Errorf("reading %s: %w", j.path, err)
		}
		data := w.small[:size]
		w.h.Reset()
		w.h.Write(ostree.FileHeader(fi))
		w.h.Write(data)
		c := w.sum()
		j.node.sum = c
		if ok, err := w.claim(c); !ok || err != nil {
			return err
		}
		return w.storeData(fi, c, data, j.where)
	}
	unix.Fadvise(f.fd, 0, 0, unix.FADV_SEQUENTIAL)
	if w.b.t.r.mode != ModeArchive && w.b.contentReused.Load() <= w.b.contentWritten.Load() {
		// Bare modes, while most objects so far were new (a cold commit):
		// copy and hash in one pass, then keep the copy only if the object
		// is missing. Storing is only a copy here, unlike compressing.
		return w.writeThrough(j, f, fi, size)
	}
	// Large file: hash first, so that an existing object is never
	// rewritten (a warm commit only reads); then read it again to store it.
	w.h.Reset()
	w.h.Write(ostree.FileHeader(fi))
	if err := w.copyExact(io.Discard, f, size); err != nil {
		return fmt.Errorf("reading %s: %w", j.path, err)
	}
	c := w.sum()
	j.node.sum = c
	if ok, err := w.claim(c); !ok || err != nil {
		return err
	}
	f.off = 0
	return w.storeStream(fi, c, f, size, j.where)
}

// writeThrough stores a large file in a bare mode in one pass.
func (w *worker) writeThrough(j contentJob, src *rawFile, fi ostree.FileInfo, size int64) error {
	f, err := w.b.t.createTemp()
	if err != nil {
		return err
	}
	w.h.Reset()
	w.h.Write(ostree.FileHeader(fi))
	if err := w.copyExact(f, src, size); err != nil {
		f.discard()
		return fmt.Errorf("reading %s: %w", j.path, err)
	}
	c := w.sum()
	j.node.sum = c
	if ok, err := w.claim(c); !ok || err != nil {
		f.discard()
		return err
	}
	w.b.wrote.Add(size)
	return w.placed(f, finishBare(f, fi, w.b.t.r.mode), c, j.where)
}

// fromSpool stores a large tar payload spooled to a temp file in the
// staging directory.
func (w *worker) fromSpool(j contentJob) error {
	w.b.files.Add(1)
	w.b.bytes.Add(j.size)
	j.node.sum = j.sum
	if w.b.t.r.mode != ModeArchive {
		// The spool holds exactly the object's bytes: finish it in place.
		w.b.wrote.Add(j.size)
		return w.placed(j.spool, finishBare(j.spool, j.fi, w.b.t.r.mode), j.sum, j.where)
	}
	defer j.spool.discard()
	j.spool.off = 0
	return w.storeStream(j.fi, j.sum, j.spool, j.size, j.where)
}

// storeData writes a content object from an in-memory payload.
func (w *worker) storeData(fi ostree.FileInfo, c ostree.Checksum, data []byte, where string) error {
	t := w.b.t
	f, err := t.createTemp()
	if err != nil {
		return err
	}
	if t.r.mode == ModeArchive {
		w.out.Reset()
		w.out.Write(ostree.ArchiveHeader(fi, uint64(len(data))))
		fw := getDeflater(t.r.zlibLevel, &w.out)
		fw.Write(data)
		err = fw.Close()
		putDeflater(t.r.zlibLevel, fw)
		if err == nil {
			_, err = f.Write(w.out.Bytes())
		}
		if err == nil {
			err = f.chmod(archiveObjectMode)
		}
		w.b.wrote.Add(int64(w.out.Len()))
	} else {
		_, err = f.Write(data)
		if err == nil {
			err = finishBare(f, fi, t.r.mode)
		}
		w.b.wrote.Add(int64(len(data)))
	}
	return w.placed(f, err, c, where)
}

// storeStream writes a content object from a reader of exactly size bytes,
// hashing again on the way: a file that changed since it was hashed is an
// error, never an object under the wrong name.
func (w *worker) storeStream(fi ostree.FileInfo, c ostree.Checksum, r io.Reader, size int64, where string) error {
	t := w.b.t
	f, err := t.createTemp()
	if err != nil {
		return err
	}
	w.h.Reset()
	w.h.Write(ostree.FileHeader(fi))
	bw := bufWriters.Get().(*bufio.Writer)
	bw.Reset(f)
	defer bufWriters.Put(bw)
	cw := &fsutil.CountWriter{W: bw}
	if t.r.mode == ModeArchive {
		cw.Write(ostree.ArchiveHeader(fi, uint64(size)))
		fw := getDeflater(t.r.zlibLevel, cw)
		err = w.copyExact(fw, r, size)
		if err == nil {
			err = fw.Close()
		}
		putDeflater(t.r.zlibLevel, fw)
	} else {
		err = w.copyExact(cw, r, size)
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil && w.sum() != c {
		err = fmt.Errorf("%s changed while being committed: %w", where, errdefs.ErrFailedPrecondition)
	}
	if err == nil {
		if t.r.mode == ModeArchive {
			err = f.chmod(archiveObjectMode)
		} else {
			err = finishBare(f, fi, t.r.mode)
		}
	}
	w.b.wrote.Add(cw.N)
	return w.placed(f, err, c, where)
}

// placed moves a finished temp file to its staged name, or removes it if
// writing it failed.
func (w *worker) placed(f *rawFile, err error, c ostree.Checksum, where string) error {
	if err != nil {
		f.discard()
		return fmt.Errorf("storing %s: %w", where, err)
	}
	if err := w.b.t.placeFile(f, ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}); err != nil {
		return fmt.Errorf("storing %s: %w", where, err)
	}
	w.b.contentWritten.Add(1)
	return nil
}

// copyExact copies exactly size bytes of r into dst and into w.h, and
// checks that r ends there.
func (w *worker) copyExact(dst io.Writer, r io.Reader, size int64) error {
	if w.stream == nil {
		w.stream = make([]byte, 256<<10)
	}
	return copyHashed(dst, r, size, w.h, w.stream)
}

func copyHashed(dst io.Writer, r io.Reader, size int64, h io.Writer, buf []byte) error {
	for left := size; left > 0; {
		n, err := io.ReadFull(r, buf[:min(int64(len(buf)), left)])
		if n > 0 {
			h.Write(buf[:n])
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return werr
			}
			left -= int64(n)
		}
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return fmt.Errorf("payload ended after %d of %d bytes: %w", size-left, size, errdefs.ErrFailedPrecondition)
		}
		if err != nil {
			return err
		}
	}
	var one [1]byte
	if n, _ := r.Read(one[:]); n > 0 {
		return fmt.Errorf("payload longer than %d bytes: %w", size, errdefs.ErrFailedPrecondition)
	}
	return nil
}

// finishBare gives a regular-file object written in a bare mode its
// metadata (docs/formats/repository.md).
func finishBare(f *rawFile, fi ostree.FileInfo, mode Mode) error {
	fd := f.fd
	var err error
	switch mode {
	case ModeBare:
		if err := unix.Fchown(fd, int(fi.UID), int(fi.GID)); err != nil {
			return fmt.Errorf("setting owner of content object: %w", err)
		}
		for _, x := range fi.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("setting xattr %s of content object: %w", x.Name, err)
			}
		}
		err = unix.Fchmod(fd, fi.Mode&ostree.ModePermMask)
	case ModeBareUser:
		if err := unix.Fsetxattr(fd, "user.ostreemeta", ostree.FileMeta(fi), 0); err != nil {
			return fmt.Errorf("setting user.ostreemeta (does the filesystem support user xattrs?): %w", err)
		}
		err = unix.Fchmod(fd, fi.Mode&0o775|0o400)
	case ModeBareUserOnly:
		err = unix.Fchmod(fd, fi.Mode&ostree.ModePermMask)
	}
	if err != nil {
		return fmt.Errorf("setting mode of content object: %w", err)
	}
	// All bare modes give content objects mtime 0 (OSTREE_TIMESTAMP).
	if err := unix.Futimes(fd, []unix.Timeval{{}, {}}); err != nil {
		return fmt.Errorf("setting mtime of content object: %w", err)
	}
	return nil
}

// checkFileInfo rejects what no content object can hold, naming the path.
func checkFileInfo(fi ostree.FileInfo, where string) error {
	if err := fi.Validate(); err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	return nil
}

// openNoFollow opens a regular file for reading without following a final
// symlink and, where allowed, without updating its atime.
func openNoFollow(path string) (*rawFile, error) {
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NOATIME | unix.O_CLOEXEC
	fd, err := unix.Open(path, flags, 0)
	if err == unix.EPERM {
		// O_NOATIME needs ownership or CAP_FOWNER.
		fd, err = unix.Open(path, flags&^unix.O_NOATIME, 0)
	}
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	return &rawFile{fd: fd, name: path}, nil
}

// statFile reads the metadata of an open regular file, xattrs included.
func (w *worker) statFile(f *rawFile, path string) (ostree.FileInfo, int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(f.fd, &st); err != nil {
		return ostree.FileInfo{}, 0, fmt.Errorf("stat %s: %w", path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return ostree.FileInfo{}, 0, fmt.Errorf("%s: changed while being committed (no longer a regular file): %w", path, errdefs.ErrFailedPrecondition)
	}
	fi := ostree.FileInfo{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
	if !w.b.noX && !w.b.canon {
		var err error
		if fi.Xattrs, w.xattr, err = fdXattrs(f.fd, w.xattr); err != nil {
			return fi, 0, fmt.Errorf("%s: %w", path, err)
		}
	}
	return fi, st.Size, nil
}

// rawFile is a file used through its descriptor only: the hot paths of a
// commit open, read and write tens of thousands of files, and *os.File
// adds poller registration, finalizers and fcntl calls to each.
type rawFile struct {
	fd   int
	name string
	off  int64 // next Read offset (pread)
	anon bool  // O_TMPFILE: no name until placeFile links it
}

// Read reads at f.off and advances it.
func (f *rawFile) Read(p []byte) (int, error) {
	for {
		n, err := unix.Pread(f.fd, p, f.off)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, &os.PathError{Op: "read", Path: f.name, Err: err}
		}
		if n == 0 && len(p) > 0 {
			return 0, io.EOF
		}
		f.off += int64(n)
		return n, nil
	}
}

// Write writes all of p.
func (f *rawFile) Write(p []byte) (int, error) {
	done := 0
	for done < len(p) {
		n, err := unix.Write(f.fd, p[done:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return done, &os.PathError{Op: "write", Path: f.name, Err: err}
		}
		done += n
	}
	return done, nil
}

func (f *rawFile) close() error {
	if f.fd < 0 {
		return nil
	}
	err := unix.Close(f.fd)
	f.fd = -1
	if err != nil {
		return &os.PathError{Op: "close", Path: f.name, Err: err}
	}
	return nil
}

func (f *rawFile) chmod(mode uint32) error {
	if err := unix.Fchmod(f.fd, mode); err != nil {
		return &os.PathError{Op: "chmod", Path: f.name, Err: err}
	}
	return nil
}

// discard closes and removes a temp file.
func (f *rawFile) discard() {
	f.close()
	if !f.anon {
		os.Remove(f.name)
	}
}

// noTmpfile is set once O_TMPFILE turned out unsupported.
var noTmpfile atomic.Bool

// createTemp creates a new object file in the staging directory: an
// anonymous O_TMPFILE when the filesystem has them, as libostree does
// (glnx_open_tmpfile_linkable_at). It has no directory entry until it is
// linked under its object name, so concurrent writers do not contend on
// the staging directory and a crash leaves nothing behind.
func (t *Txn) createTemp() (*rawFile, error) {
	if !noTmpfile.Load() {
		fd, err := unix.Open(t.dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
		if err == nil {
			return &rawFile{fd: fd, name: t.dir + "/(tmpfile)", anon: true}, nil
		}
		if err != unix.EOPNOTSUPP && err != unix.EISDIR && err != unix.EINVAL {
			return nil, fmt.Errorf("creating object file in %s: %w", t.r.path, err)
		}
		noTmpfile.Store(true)
	}
	for {
		name := t.dir + "/.tmp-c" + strconv.Itoa(os.Getpid()) + "-" + strconv.FormatUint(tempSeq.Add(1), 10)
		fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o600)
		if err == unix.EEXIST {
			continue // left by an earlier process with the same pid
		}
		if err != nil {
			return nil, fmt.Errorf("creating object file in %s: %w", t.r.path, err)
		}
		return &rawFile{fd: fd, name: name}, nil
	}
}

var tempSeq atomic.Uint64

// placeFile gives a finished object file its staged name and closes it.
// An object another writer staged meanwhile wins (same content).
func (t *Txn) placeFile(f *rawFile, n ostree.ObjectName) error {
	if !f.anon {
		if err := f.close(); err != nil {
			os.Remove(f.name)
			return err
		}
		return t.place(f.name, n)
	}
	defer f.close()
	dst := t.stagedPath(n)
	if err := t.stagingSubdir(filepath.Dir(dst)); err != nil {
		return fmt.Errorf("staging object %s: %w", n, err)
	}
	err := unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(f.fd), unix.AT_FDCWD, dst, unix.AT_SYMLINK_FOLLOW)
	if err != nil && err != unix.EEXIST {
		return fmt.Errorf("staging object %s: %w", n, err)
	}
	t.markStaged(n)
	return f.close()
}

// stagingSubdir creates a staging subdirectory once per transaction.
func (t *Txn) stagingSubdir(sub string) error {
	t.mu.Lock()
	made := t.mkdirs[sub]
	t.mu.Unlock()
	if made {
		return nil
	}
	if err := os.Mkdir(sub, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	t.mu.Lock()
	t.mkdirs[sub] = true
	t.mu.Unlock()
	return nil
}
