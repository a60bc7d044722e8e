package delta

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/strata-os/strata/internal/bsdiff"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// MaxReadSourceSize bounds the size of a local object that a part's
// set-read-source operation makes strata hold in memory.
const MaxReadSourceSize = 64 << 20

// PartSource returns the file of part i of a delta, at most max bytes
// (the size its header declares): a fetcher over HTTP or a reader of a
// directory. It is not called for inline parts.
type PartSource func(ctx context.Context, i int, max int64) ([]byte, error)

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
func Apply(ctx context.Context, txn *repo.Txn, sb *Superblock, parts PartSource) error {
	for i, h := range sb.Parts {
		if err := ctx.Err(); err != nil {
			return err
		}
		if skip, err := havePart(txn, h); err != nil {
			return err
		} else if skip {
			continue
		}
		file, inline, err := sb.InlinePart(i)
		if err != nil {
			return fmt.Errorf("delta %s: %w", sb.Name, err)
		}
		if !inline {
			if file, err = parts(ctx, i, int64(h.Size)); err != nil {
				return fmt.Errorf("delta %s: fetching part %d: %w", sb.Name, i, err)
			}
		}
		p, err := OpenPart(file, h)
		file = nil
		if err != nil {
			return fmt.Errorf("delta %s: part %d: %w", sb.Name, i, err)
		}
		if err := run(txn, p, h.Objects); err != nil {
			return fmt.Errorf("delta %s: part %d: %w", sb.Name, i, err)
		}
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

// machine runs one part's program.
type machine struct {
	txn  *repo.Txn
	p    *Part
	objs []ostree.ObjectName
	ops  []byte
	next int // index of the object the next operation produces

	src []byte // the read source's payload, nil when unset

	// The open content object (opOpen until opClose).
	open    bool
	left    uint64
	pw      *io.PipeWriter
	written chan error
}

func run(txn *repo.Txn, p *Part, objs []ostree.ObjectName) (err error) {
	m := &machine{txn: txn, p: p, objs: objs, ops: p.Ops}
	defer func() {
		if m.open {
			m.pw.CloseWithError(fmt.Errorf("part program ended: %w", errdefs.ErrInvalid))
			<-m.written
		}
	}()
	for len(m.ops) > 0 {
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

func (m *machine) current() (ostree.ObjectName, error) {
	if m.next >= len(m.objs) {
		return ostree.ObjectName{}, fmt.Errorf("more objects than the part header lists: %w", errdefs.ErrInvalid)
	}
	return m.objs[m.next], nil
}

func (m *machine) fileInfo(modeIdx, xattrIdx uint64) (ostree.FileInfo, error) {
	if modeIdx >= uint64(len(m.p.Modes)) || xattrIdx >= uint64(len(m.p.Xattrs)) {
		return ostree.FileInfo{}, fmt.Errorf("mode %d or xattrs %d out of range: %w", modeIdx, xattrIdx, errdefs.ErrInvalid)
	}
	md := m.p.Modes[modeIdx]
	return ostree.FileInfo{UID: md.UID, GID: md.GID, Mode: md.Mode, Xattrs: m.p.Xattrs[xattrIdx]}, nil
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
		from := m.p.Raw
		if m.src != nil {
			from = m.src
		}
		b, err := slice(from, a[1], a[0])
		if err != nil {
			return err
		}
		return m.write(b)
	case opSetReadSource:
		off, err := m.arg()
		if err != nil {
			return err
		}
		b, err := slice(m.p.Raw, off, 32)
		if err != nil {
			return err
		}
		return m.setSource(ostree.Checksum(b))
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
		patch, err := slice(m.p.Raw, a[0], a[1])
		if err != nil {
			return err
		}
		// The result is at most as long as the patch, so the part's
		// bound bounds it.
		out, err := bsdiff.Patch(m.src, int64(m.left), patch)
		if err != nil {
			return err
		}
		return m.write(out)
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
		data, err := slice(m.p.Raw, a[1], a[0])
		if err != nil {
			return err
		}
		if err := m.txn.WriteMetadataExpect(n.Type, n.Checksum, data); err != nil {
			return err
		}
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
	data, err := slice(m.p.Raw, a[3], a[2])
	if err != nil {
		return err
	}
	size := int64(len(data))
	if fi.IsSymlink() {
		fi.SymlinkTarget, size = string(data), 0
	}
	if _, err := m.txn.WriteContent(fi, bytes.NewReader(data), size, &n.Checksum); err != nil {
		return err
	}
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
	m.open, m.left, m.pw, m.written = true, a[2], pw, make(chan error, 1)
	go func() {
		_, err := m.txn.WriteContent(fi, pr, int64(a[2]), &n.Checksum)
		io.Copy(io.Discard, pr) // an object that was present reads nothing
		m.written <- err
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

func (m *machine) closeObject() error {
	if !m.open {
		return fmt.Errorf("close without an open object: %w", errdefs.ErrInvalid)
	}
	m.open = false
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
