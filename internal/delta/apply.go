package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/strata-os/strata/internal/bsdiff"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// MaxReadSourceSize bounds the size of a local object that a part's
// set-read-source operation makes strata hold in memory.
const MaxReadSourceSize = 64 << 20

// PartSource opens the file of part i of a delta, which should be max
// bytes long (the size its header declares): a fetcher over HTTP or a
// reader of a directory. It is not called for inline parts. The caller
// closes the reader.
type PartSource func(ctx context.Context, i int, max int64) (io.ReadCloser, error)

// InlinePart returns the file of part i when the superblock carries it.
func (s *Superblock) InlinePart(i int) ([]byte, bool, error) {
	v, ok := s.Metadata.Get(s.Name.PartPath(i))
	if !ok {
		return nil, false, nil
	}
	if v.Type.String() != inlinePartType.String() {
		return nil, true, fmt.Errorf("inline part %d of type %s: %w", i, v.Type, errdefs.ErrInvalid)
	}
	tu := v.Value.(gvariant.Tuple)
	return append([]byte{tu[0].(uint8)}, tu[1].([]byte)...), true, nil
}

// Apply writes the objects of a delta's parts, then its commit and the
// commit's detached metadata, into the transaction. Every part is checked
// against its header before it is decompressed, and every object against
// the checksum the header names before it is stored; on error the
// transaction may hold verified objects of earlier operations and nothing
// else. Fallback objects are the caller's to fetch; Apply does not check
// that they are present.
//
// Up to writers parts are fetched and decompressed at once, each into its
// spool, while the programs run in order: the xz decoder is the slowest
// stage of an application and runs on one core per part.
func Apply(ctx context.Context, txn *repo.Txn, sb *Superblock, parts PartSource) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type fetched struct {
		sp    *spool
		err   error
		skip  bool
		nosem bool // never started: holds no slot
	}
	results := make([]chan fetched, len(sb.Parts))
	for i := range results {
		results[i] = make(chan fetched, 1)
	}
	// A part holds a slot from its fetch until its program ran.
	sem := make(chan struct{}, writers)
	go func() {
		for i, h := range sb.Parts {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				for _, ch := range results[i:] {
					ch <- fetched{err: ctx.Err(), nosem: true}
				}
				return
			}
			go func() {
				if skip, err := havePart(txn, h); err != nil || skip {
					results[i] <- fetched{err: err, skip: skip}
					return
				}
				sp, err := fetchPart(ctx, txn, sb, i, h, parts)
				results[i] <- fetched{sp: sp, err: err}
			}()
		}
	}()
	var failed error
	for i, ch := range results {
		f := <-ch
		switch {
		case f.err != nil:
			if failed == nil {
				failed = fmt.Errorf("delta %s: %w", sb.Name, f.err)
				cancel()
			}
		case f.skip:
		case failed == nil:
			if err := runPart(ctx, txn, f.sp, sb.Parts[i]); err != nil {
				failed = fmt.Errorf("delta %s: part %d: %w", sb.Name, i, err)
				cancel()
			}
		}
		if f.sp != nil {
			f.sp.f.Close()
		}
		if !f.nosem {
			<-sem
		}
	}
	if failed != nil {
		return failed
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := txn.WriteMetadataExpect(ostree.ObjectCommit, sb.Name.To, sb.Commit); err != nil {
		return fmt.Errorf("delta %s: %w", sb.Name, err)
	}
	if v, ok := sb.Metadata.Get(sb.Name.CommitMetaKey()); ok {
		if v.Type.String() != "a{sv}" {
			return fmt.Errorf("delta %s: detached metadata of type %s: %w", sb.Name, v.Type, errdefs.ErrInvalid)
		}
		data, err := gvariant.Marshal(v.Type, v.Value)
		if err != nil {
			return fmt.Errorf("delta %s: detached metadata: %w", sb.Name, err)
		}
		if err := txn.WriteCommitMeta(sb.Name.To, data); err != nil {
			return fmt.Errorf("delta %s: %w", sb.Name, err)
		}
	}
	return nil
}

// fetchPart fetches part i and spools its payload to an anonymous file in
// the repository's tmp/.
func fetchPart(ctx context.Context, txn *repo.Txn, sb *Superblock, i int, h PartHeader, parts PartSource) (*spool, error) {
	file, inline, err := sb.InlinePart(i)
	if err != nil {
		return nil, err
	}
	var r io.ReadCloser
	if inline {
		r = io.NopCloser(bytes.NewReader(file))
	} else if r, err = parts(ctx, i, int64(h.Size)); err != nil {
		return nil, fmt.Errorf("fetching part %d: %w", i, err)
	}
	sp, err := spoolPart(ctx, r, h, filepath.Join(txn.Repo().Path(), "tmp"), MaxPartSize)
	r.Close()
	if err != nil {
		return nil, fmt.Errorf("part %d: %w", i, err)
	}
	return sp, nil
}

// runPart runs the program of a spooled part.
func runPart(ctx context.Context, txn *repo.Txn, sp *spool, h PartHeader) error {
	pl, err := splitPayload(sp.f, sp.size)
	if err != nil {
		return err
	}
	return runPayload(ctx, txn, pl, h.Objects)
}

// havePart reports whether the transaction already has every object of a
// part, so that it need not be fetched.
func havePart(txn *repo.Txn, h PartHeader) (bool, error) {
	for _, o := range h.Objects {
		ok, err := txn.HasObject(o)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// maxPatchSize bounds the bsdiff patch an operation makes strata hold in
// memory; the file it produces is no longer than its patch.
const maxPatchSize = MaxReadSourceSize

// maxAsyncPatch bounds the read source and patch of a bsdiff operation
// that is applied in a writer of its own, so that the writers together
// hold at most writers times this.
const maxAsyncPatch = 16 << 20

// machine runs one part's program. Objects spliced whole are written by up
// to writers goroutines at once, each reading its bytes from the payload
// and hashing them into the transaction, while the program goes on; an
// operation that reads a local object (set-read-source) and the end of
// the program wait for them.
type machine struct {
	ctx  context.Context
	txn  *repo.Txn
	p    *payload
	objs []ostree.ObjectName
	ops  []byte
	next int // index of the object the next operation produces

	src []byte      // the read source's payload, nil when unset
	pf  *prefetcher // reads the coming sources ahead

	// The open content object (opOpen until opClose).
	open     bool
	size     uint64 // the open object's size
	left     uint64
	pw       *io.PipeWriter
	written  chan error
	detached bool // a writer of its own patches the open object

	// Writes in flight.
	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	failed error
}

// writers is how many objects of a part are written at once: hashing and
// writing an object costs about as much as decompressing it, so a few
// writers keep up with the decompressor.
var writers = max(2, runtime.GOMAXPROCS(0))

// run runs an in-memory part's program.
func run(txn *repo.Txn, p *Part, objs []ostree.ObjectName) error {
	return runPayload(context.Background(), txn, p.payload(), objs)
}

func runPayload(ctx context.Context, txn *repo.Txn, p *payload, objs []ostree.ObjectName) (err error) {
	m := &machine{ctx: ctx, txn: txn, p: p, objs: objs, ops: p.ops, sem: make(chan struct{}, writers)}
	m.pf = startPrefetch(txn.Repo(), p, objs)
	defer m.pf.stop()
	defer func() {
		if m.open && !m.detached {
			m.pw.CloseWithError(fmt.Errorf("part program ended: %w", errdefs.ErrInvalid))
			<-m.written
		}
		if werr := m.wait(); err == nil {
			err = werr
		}
	}()
	for len(m.ops) > 0 {
		if err := m.error(); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		op := m.ops[0]
		m.ops = m.ops[1:]
		if err := m.step(op); err != nil {
			return fmt.Errorf("operation %q at object %d: %w", op, m.next, err)
		}
	}
	if m.open || m.next != len(objs) {
		return fmt.Errorf("program produced %d of %d objects: %w", m.next, len(objs), errdefs.ErrInvalid)
	}
	return nil
}

// async runs a write in a goroutine of its own, at most writers at once.
func (m *machine) async(n ostree.ObjectName, write func() error) {
	m.sem <- struct{}{}
	m.wg.Add(1)
	go func() {
		defer func() { <-m.sem; m.wg.Done() }()
		if err := write(); err != nil {
			m.mu.Lock()
			if m.failed == nil {
				m.failed = fmt.Errorf("writing %s: %w", n, err)
			}
			m.mu.Unlock()
		}
	}()
}

// error returns the first error of a finished write.
func (m *machine) error() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed
}

// wait waits for the writes in flight and returns the first error.
func (m *machine) wait() error {
	m.wg.Wait()
	return m.error()
}

func (m *machine) arg() (uint64, error) {
	x, n, err := readVarint(m.ops)
	m.ops = m.ops[n:]
	return x, err
}

func (m *machine) args(n int) ([]uint64, error) {
	out := make([]uint64, n)
	for i := range out {
		var err error
		if out[i], err = m.arg(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// slice returns b[off:off+n] or an error if that is out of bounds.
func slice(b []byte, off, n uint64) ([]byte, error) {
	if off > uint64(len(b)) || n > uint64(len(b))-off {
		return nil, fmt.Errorf("range %d+%d outside %d bytes: %w", off, n, len(b), errdefs.ErrInvalid)
	}
	return b[off : off+n], nil
}

// section returns the raw bytes [off, off+n) of the payload as a reader,
// or an error if that is out of bounds.
func (m *machine) section(off, n uint64) (*io.SectionReader, error) {
	size := uint64(m.p.rawLen)
	if off > size || n > size-off {
		return nil, fmt.Errorf("range %d+%d outside %d bytes: %w", off, n, size, errdefs.ErrInvalid)
	}
	return io.NewSectionReader(m.p.raw, int64(off), int64(n)), nil
}

// rawBytes reads the raw bytes [off, off+n) of the payload, at most limit.
func (m *machine) rawBytes(off, n uint64, limit int64) ([]byte, error) {
	sr, err := m.section(off, n)
	if err != nil {
		return nil, err
	}
	if n > uint64(limit) {
		return nil, fmt.Errorf("%d bytes, more than the %d allowed: %w", n, limit, errdefs.ErrInvalid)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(sr, b); err != nil {
		return nil, fmt.Errorf("reading part payload: %w", err)
	}
	return b, nil
}

func (m *machine) current() (ostree.ObjectName, error) {
	if m.next >= len(m.objs) {
		return ostree.ObjectName{}, fmt.Errorf("more objects than the part header lists: %w", errdefs.ErrInvalid)
	}
	return m.objs[m.next], nil
}

func (m *machine) fileInfo(modeIdx, xattrIdx uint64) (ostree.FileInfo, error) {
	if modeIdx >= uint64(len(m.p.modes)) || xattrIdx >= uint64(len(m.p.xattrs)) {
		return ostree.FileInfo{}, fmt.Errorf("mode %d or xattrs %d out of range: %w", modeIdx, xattrIdx, errdefs.ErrInvalid)
	}
	md := m.p.modes[modeIdx]
	return ostree.FileInfo{UID: md.UID, GID: md.GID, Mode: md.Mode, Xattrs: m.p.xattrs[xattrIdx]}, nil
}

func (m *machine) step(op byte) error {
	switch op {
	case opOpenSpliceAndClose:
		return m.spliceAndClose()
	case opOpen:
		return m.openObject()
	case opWrite:
		a, err := m.args(2)
		if err != nil {
			return err
		}
		if !m.open {
			return fmt.Errorf("write without an open object: %w", errdefs.ErrInvalid)
		}
		if a[0] > m.left {
			return fmt.Errorf("writes exceed the object's size: %w", errdefs.ErrInvalid)
		}
		if m.src != nil {
			b, err := slice(m.src, a[1], a[0])
			if err != nil {
				return err
			}
			return m.write(b)
		}
		sr, err := m.section(a[1], a[0])
		if err != nil {
			return err
		}
		m.left -= a[0]
		_, err = io.Copy(m.pw, sr)
		return err
	case opSetReadSource:
		off, err := m.arg()
		if err != nil {
			return err
		}
		b, err := m.rawBytes(off, 32, 32)
		if err != nil {
			return err
		}
		// The source may be an object of this part still being
		// written: wait for the writes in flight only then.
		c := ostree.Checksum(b)
		if ok, err := m.txn.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}); err != nil {
			return err
		} else if !ok {
			if err := m.wait(); err != nil {
				return err
			}
		}
		return m.setSource(c)
	case opUnsetReadSource:
		m.src = nil
		return nil
	case opClose:
		return m.closeObject()
	case opBspatch:
		a, err := m.args(2)
		if err != nil {
			return err
		}
		if !m.open || m.src == nil {
			return fmt.Errorf("bspatch without an open object and a read source: %w", errdefs.ErrInvalid)
		}
		patch, err := m.rawBytes(a[0], a[1], maxPatchSize)
		if err != nil {
			return err
		}
		if m.left == m.size && int64(len(m.src)+len(patch)) <= maxAsyncPatch {
			m.patchAsync(patch)
			return nil
		}
		// The result streams into the open object.
		return bsdiff.PatchTo(objectWriter{m}, m.src, int64(m.left), patch)
	}
	return fmt.Errorf("unknown operation: %w", errdefs.ErrInvalid)
}

func (m *machine) spliceAndClose() error {
	if m.open {
		return fmt.Errorf("splice while an object is open: %w", errdefs.ErrInvalid)
	}
	n, err := m.current()
	if err != nil {
		return err
	}
	if n.Type != ostree.ObjectFile {
		a, err := m.args(2)
		if err != nil {
			return err
		}
		data, err := m.rawBytes(a[1], a[0], repo.MaxMetadataSize)
		if err != nil {
			return err
		}
		m.async(n, func() error { return m.txn.WriteMetadataExpect(n.Type, n.Checksum, data) })
		m.next++
		return nil
	}
	a, err := m.args(4)
	if err != nil {
		return err
	}
	fi, err := m.fileInfo(a[0], a[1])
	if err != nil {
		return err
	}
	if fi.IsSymlink() {
		target, err := m.rawBytes(a[3], a[2], 4096)
		if err != nil {
			return err
		}
		fi.SymlinkTarget = string(target)
		m.async(n, func() error {
			_, err := m.txn.WriteContent(fi, nil, 0, &n.Checksum)
			return err
		})
		m.next++
		return nil
	}
	sr, err := m.section(a[3], a[2])
	if err != nil {
		return err
	}
	m.async(n, func() error {
		_, err := m.txn.WriteContent(fi, sr, int64(a[2]), &n.Checksum)
		return err
	})
	m.next++
	return nil
}

// openObject starts a content object whose payload the following write
// operations stream into the repository.
func (m *machine) openObject() error {
	if m.open {
		return fmt.Errorf("open while an object is open: %w", errdefs.ErrInvalid)
	}
	n, err := m.current()
	if err != nil {
		return err
	}
	a, err := m.args(3)
	if err != nil {
		return err
	}
	fi, err := m.fileInfo(a[0], a[1])
	if err != nil {
		return err
	}
	if n.Type != ostree.ObjectFile || !fi.IsRegular() {
		return fmt.Errorf("open of %s with mode %#o: %w", n, fi.Mode, errdefs.ErrInvalid)
	}
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	m.open, m.size, m.left, m.pw, m.written = true, a[2], a[2], pw, written
	go func() {
		_, err := m.txn.WriteContent(fi, pr, int64(a[2]), &n.Checksum)
		io.Copy(io.Discard, pr) // an object that was present reads nothing
		written <- err
	}()
	return nil
}

func (m *machine) write(b []byte) error {
	if uint64(len(b)) > m.left {
		return fmt.Errorf("writes exceed the object's size: %w", errdefs.ErrInvalid)
	}
	m.left -= uint64(len(b))
	_, err := m.pw.Write(b)
	return err
}

// patchAsync makes the whole open object of a patch in a writer of its
// own, as a spliced object is written: the program goes on while the
// patch is applied and the result hashed and stored. Further writes to
// the object are errors (it is full), and its close does not wait.
func (m *machine) patchAsync(patch []byte) {
	n := m.objs[m.next]
	src, size, pw, written := m.src, m.left, m.pw, m.written
	m.left, m.detached = 0, true
	m.async(n, func() error {
		if err := bsdiff.PatchTo(pw, src, int64(size), patch); err != nil {
			pw.CloseWithError(err)
			<-written
			return err
		}
		pw.Close()
		return <-written
	})
}

// objectWriter writes to the machine's open object.
type objectWriter struct{ m *machine }

func (w objectWriter) Write(b []byte) (int, error) {
	if err := w.m.write(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (m *machine) closeObject() error {
	if !m.open {
		return fmt.Errorf("close without an open object: %w", errdefs.ErrInvalid)
	}
	m.open = false
	if m.detached {
		m.detached = false
		m.next++
		return nil
	}
	if m.left != 0 {
		m.pw.CloseWithError(fmt.Errorf("object closed %d bytes short: %w", m.left, errdefs.ErrInvalid))
	} else {
		m.pw.Close()
	}
	if err := <-m.written; err != nil {
		return err
	}
	m.next++
	return nil
}

// setSource loads a local content object's payload as the read source.
func (m *machine) setSource(c ostree.Checksum) error {
	m.pf.consumed()
	obj, err := m.txn.OpenContent(c)
	if err != nil {
		return fmt.Errorf("read source: %w", err)
	}
	defer obj.Close()
	if obj.Size > MaxReadSourceSize {
		return fmt.Errorf("read source %s of %d bytes is larger than %d: %w", c, obj.Size, MaxReadSourceSize, errdefs.ErrUnsupported)
	}
	m.src = make([]byte, obj.Size)
	if _, err := io.ReadFull(obj, m.src); err != nil {
		return fmt.Errorf("reading read source %s: %w", c, err)
	}
	return nil
}
