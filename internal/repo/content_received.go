package repo

import (
	"bytes"
	"fmt"
	"io"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// Spool receives the bytes of an archived content object (.filez: framed
// header, then a raw deflate stream) as a pull reads them from the
// network, so that a pull into an archive repository keeps the compressed
// stream it received instead of inflating it only to compress it again
// (Txn.WriteReceived). It is an object file with no name and mode 0600,
// like any object before it is verified (Txn.createTemp).
type Spool struct {
	f *rawFile
	n int64 // bytes written
}

// NewSpool creates a spool in the transaction's staging directory. Only
// an archive repository stores objects in the form a spool holds.
func (t *Txn) NewSpool() (*Spool, error) {
	if t.r.mode != ModeArchive {
		return nil, fmt.Errorf("spooling a received object into a %s repository: %w", t.r.mode, errdefs.ErrFailedPrecondition)
	}
	f, err := t.createTemp()
	if err != nil {
		return nil, err
	}
	return &Spool{f: f}, nil
}

// Write appends p to the spool.
func (s *Spool) Write(p []byte) (int, error) {
	if s.f == nil {
		return 0, fmt.Errorf("writing to a spool that was used or discarded: %w", errdefs.ErrFailedPrecondition)
	}
	n, err := s.f.Write(p)
	s.n += int64(n)
	return n, err
}

// Discard removes the spool unless WriteReceived took it; it may be
// called more than once.
func (s *Spool) Discard() {
	if s.f != nil {
		s.f.discard()
		s.f = nil
	}
}

// WriteReceived stores the regular file fi of size bytes whose archived
// form, exactly as received, went into spool while this reads payload, the
// stream's inflation: payload must check the end of the deflate stream and
// that nothing follows it before it returns its last byte (the pull's
// reader does), so that when payload is done the spool holds the framed
// header of headerLen bytes, the stream, and nothing else. The content is
// hashed as WriteContent hashes it and the object kept only if it is want;
// until then the spool carries no metadata of the object's.
//
// The stored object is the spool itself when its header is the one
// strata writes for fi and size (a GVariant in normal form, so whoever
// wrote it); otherwise strata's header and the received stream are copied
// into a new object file. Either way the compressed stream is the one that
// was verified, byte for byte. The spool is used up or discarded.
func (t *Txn) WriteReceived(fi ostree.FileInfo, payload io.Reader, size int64, want ostree.Checksum, spool *Spool, headerLen int64) (ostree.Checksum, error) {
	defer spool.Discard()
	if err := fi.Validate(); err != nil {
		return ostree.Checksum{}, err
	}
	if !fi.IsRegular() {
		return ostree.Checksum{}, fmt.Errorf("content object %s: only regular files are stored from their received stream: %w", want, errdefs.ErrInvalid)
	}
	n := ostree.ObjectName{Checksum: want, Type: ostree.ObjectFile}
	if ok, err := t.HasObject(n); ok || err != nil {
		return want, err
	}
	hw := newHashWriter(ostree.FileHeader(fi))
	if err := copyExact(hw, payload, size); err != nil {
		// As WriteContent: the reader's errors name the object.
		return ostree.Checksum{}, fmt.Errorf("writing content object: %w", err)
	}
	if c := hw.sum(); c != want {
		return c, fmt.Errorf("content object %s: content hashes to %s: %w", want, c, errdefs.ErrCorrupt)
	}
	if spool.f == nil || spool.n < headerLen {
		return ostree.Checksum{}, fmt.Errorf("content object %s: the spool holds %d bytes, not the header's %d: %w", want, spool.n, headerLen, errdefs.ErrFailedPrecondition)
	}
	f, err := t.receivedObject(fi, size, spool, headerLen)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("content object %s: %w", want, err)
	}
	return want, t.keepContent(f, fi, n, size)
}

// receivedObject returns the object file for a verified spool: the spool
// itself when it begins with strata's header for fi and size, else a new
// file with that header and the spool's stream after it. The spool is read
// through its rawFile, whose Read is a pread at its own offset.
func (t *Txn) receivedObject(fi ostree.FileInfo, size int64, spool *Spool, headerLen int64) (*rawFile, error) {
	own := ostree.ArchiveHeader(fi, uint64(size))
	if int64(len(own)) == headerLen {
		got := make([]byte, headerLen)
		spool.f.off = 0
		if _, err := io.ReadFull(spool.f, got); err != nil {
			return nil, fmt.Errorf("reading the spooled header: %w", err)
		}
		if bytes.Equal(got, own) {
			f := spool.f
			spool.f = nil
			return f, nil
		}
	}
	f, err := t.createTemp()
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(own); err != nil {
		f.discard()
		return nil, fmt.Errorf("writing content object: %w", err)
	}
	spool.f.off = headerLen
	if _, err := io.Copy(f, io.LimitReader(spool.f, spool.n-headerLen)); err != nil {
		f.discard()
		return nil, fmt.Errorf("writing content object: %w", err)
	}
	return f, nil
}
