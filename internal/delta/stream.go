package delta

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/therootcompany/xz"
	"golang.org/x/sys/unix"
)

// MaxPartSize bounds the uncompressed payload of one part that strata
// applies. A payload is spooled to an anonymous file, not held in memory,
// so this bounds the disk a part takes, and decompression stops there: a
// part that expands to gigabytes costs at most this much disk and the time
// to write it. libostree's generator splits parts at 32 MB by default.
const MaxPartSize = 1 << 30

// maxDict bounds the dictionary of a part's xz stream, the memory its
// decoder takes: 64 MiB is what xz -9 uses; libostree writes 32 MiB,
// strata 8 MiB.
const maxDict = 64 << 20

// maxPartTables bounds the parts of a payload that are held in memory: the
// mode and xattr tables and the operations.
const maxPartTables = 32 << 20

// payload is a part's payload as the machine reads it: the tables and
// operations in memory, the raw bytes through a ReaderAt (the spool file).
type payload struct {
	modes  []Mode
	xattrs [][]ostree.Xattr
	raw    io.ReaderAt
	rawLen int64
	ops    []byte
}

var (
	modesType  = gvariant.MustType("a(uuu)")
	xattrsType = gvariant.MustType("aa(ayay)")
)

// splitPayload finds the four members of a payload of the given size,
// (a(uuu)aa(ayay)ayay), from the framing offsets at its end: GVariant
// stores the end of each variable-size member but the last there, the
// first member's last, in the width the whole size calls for. The tables
// and the operations are read into memory (at most maxPartTables bytes),
// the raw bytes are left where they are.
func splitPayload(ra io.ReaderAt, size int64) (*payload, error) {
	w := int64(8)
	switch {
	case size <= 0xff:
		w = 1
	case size <= 0xffff:
		w = 2
	case size <= 0xffffffff:
		w = 4
	}
	if size < 3*w {
		return nil, fmt.Errorf("part payload of %d bytes: %w", size, errdefs.ErrInvalid)
	}
	tail := make([]byte, 3*w)
	if _, err := ra.ReadAt(tail, size-3*w); err != nil {
		return nil, fmt.Errorf("reading part framing: %w", err)
	}
	off := func(i int64) uint64 {
		b := tail[i*w : (i+1)*w]
		switch w {
		case 1:
			return uint64(b[0])
		case 2:
			return uint64(binary.LittleEndian.Uint16(b))
		case 4:
			return uint64(binary.LittleEndian.Uint32(b))
		}
		return binary.LittleEndian.Uint64(b)
	}
	body := uint64(size - 3*w)
	end0, end1, end2 := off(2), off(1), off(0)
	if end0 > end1 || end1 > end2 || end2 > body {
		return nil, fmt.Errorf("part framing offsets %d, %d, %d in %d bytes: %w", end0, end1, end2, body, errdefs.ErrInvalid)
	}
	if end1+(body-end2) > maxPartTables {
		return nil, fmt.Errorf("part tables and operations of %d bytes, more than %d: %w", end1+(body-end2), maxPartTables, errdefs.ErrInvalid)
	}
	read := func(from, to uint64) ([]byte, error) {
		b := make([]byte, to-from)
		if _, err := ra.ReadAt(b, int64(from)); err != nil {
			return nil, fmt.Errorf("reading part payload: %w", err)
		}
		return b, nil
	}
	tables, err := read(0, end1)
	if err != nil {
		return nil, err
	}
	ops, err := read(end2, body)
	if err != nil {
		return nil, err
	}
	p := &payload{raw: io.NewSectionReader(ra, int64(end1), int64(end2-end1)), rawLen: int64(end2 - end1), ops: ops}
	if p.modes, err = parseModes(tables[:end0]); err != nil {
		return nil, err
	}
	if p.xattrs, err = parseXattrs(tables[end0:end1]); err != nil {
		return nil, err
	}
	return p, nil
}

func parseModes(b []byte) ([]Mode, error) {
	v, err := gvariant.Unmarshal(modesType, b)
	if err != nil {
		return nil, fmt.Errorf("decoding part modes: %w", err)
	}
	var out []Mode
	for _, mv := range v.([]any) {
		m := mv.(gvariant.Tuple)
		out = append(out, Mode{UID: be32(m[0].(uint32)), GID: be32(m[1].(uint32)), Mode: be32(m[2].(uint32))})
	}
	return out, nil
}

func parseXattrs(b []byte) ([][]ostree.Xattr, error) {
	v, err := gvariant.Unmarshal(xattrsType, b)
	if err != nil {
		return nil, fmt.Errorf("decoding part xattrs: %w", err)
	}
	var out [][]ostree.Xattr
	for _, sv := range v.([]any) {
		set := []ostree.Xattr{}
		for _, xv := range sv.([]any) {
			x := xv.(gvariant.Tuple)
			name := x[0].([]byte)
			if len(name) == 0 || name[len(name)-1] != 0 || bytesIndexNUL(name[:len(name)-1]) {
				return nil, fmt.Errorf("part: xattr name %q not NUL-terminated: %w", name, errdefs.ErrInvalid)
			}
			set = append(set, ostree.Xattr{Name: string(name[:len(name)-1]), Value: x[1].([]byte)})
		}
		out = append(out, set)
	}
	return out, nil
}

func bytesIndexNUL(b []byte) bool {
	for _, c := range b {
		if c == 0 {
			return true
		}
	}
	return false
}

// spool is a part's payload in an anonymous file.
type spool struct {
	f    *os.File
	size int64
}

// createSpool makes an anonymous file in dir (O_TMPFILE, or a file
// removed at once where the filesystem has none), readable only by us.
func createSpool(dir string) (*os.File, error) {
	fd, err := unix.Open(dir, unix.O_RDWR|unix.O_TMPFILE|unix.O_CLOEXEC, 0o600)
	if err == nil {
		return os.NewFile(uintptr(fd), filepath.Join(dir, "(part spool)")), nil
	}
	f, err := os.CreateTemp(dir, ".delta-part-")
	if err != nil {
		return nil, fmt.Errorf("creating part spool: %w", err)
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, fmt.Errorf("creating part spool: %w", err)
	}
	return f, nil
}

// countingHash hashes and counts what goes through it, and refuses more
// than max bytes.
type countingHash struct {
	r   io.Reader
	h   hash.Hash
	n   int64
	max int64
}

var errPartTooLong = errors.New("part is longer than its header says")

func (c *countingHash) Read(p []byte) (int, error) {
	if c.n > c.max {
		return 0, errPartTooLong
	}
	if int64(len(p)) > c.max+1-c.n {
		p = p[:c.max+1-c.n]
	}
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}

// spoolPart reads a part file from r and decompresses it into an anonymous
// file in dir as it arrives: the download and the decompression run in
// goroutines of their own, joined by a pipe, so that neither waits for the
// whole file and memory stays at a few buffers whatever the part's size.
// The compressed bytes are hashed on the way; the payload is used only
// after the whole file matched the size and sha256 of its header, and
// decompression stops past max bytes.
func spoolPart(ctx context.Context, r io.Reader, h PartHeader, dir string, max int64) (*spool, error) {
	if h.UncompressedSize > uint64(max) {
		return nil, fmt.Errorf("part of %d bytes uncompressed is larger than %d: %w", h.UncompressedSize, max, errdefs.ErrInvalid)
	}
	f, err := createSpool(dir)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
		}
	}()
	ch := &countingHash{r: r, h: sha256.New(), max: int64(h.Size)}
	pr, pw := io.Pipe()
	fetched := make(chan error, 1)
	go func() {
		buf := make([]byte, 256<<10)
		_, err := io.CopyBuffer(pw, ch, buf)
		pw.CloseWithError(err)
		fetched <- err
	}()
	size, derr := decompress(ctx, bufio.NewReaderSize(pr, 256<<10), f, max)
	// Drain what the decompressor left, so that the hash covers the file.
	io.Copy(io.Discard, pr)
	pr.Close()
	ferr := <-fetched
	switch {
	case errors.Is(ferr, errPartTooLong):
		return nil, fmt.Errorf("part has more than the %d bytes its header says: %w", h.Size, errdefs.ErrCorrupt)
	case ferr != nil:
		return nil, ferr
	case uint64(ch.n) != h.Size:
		return nil, fmt.Errorf("part has %d bytes, its header says %d: %w", ch.n, h.Size, errdefs.ErrCorrupt)
	}
	if got := ostree.Checksum(ch.h.Sum(nil)); got != h.Checksum {
		return nil, fmt.Errorf("part hashes to %s, its header says %s: %w", got, h.Checksum, errdefs.ErrCorrupt)
	}
	if derr != nil {
		return nil, derr
	}
	ok = true
	return &spool{f: f, size: size}, nil
}

// decompress writes the payload of the part file read from r into f, at
// most max bytes, and returns its size.
func decompress(ctx context.Context, r *bufio.Reader, f *os.File, max int64) (int64, error) {
	c, err := r.ReadByte()
	if err != nil {
		return 0, fmt.Errorf("empty part: %w", errdefs.ErrCorrupt)
	}
	var src io.Reader
	switch c {
	case compressionNone:
		src = r
	case compressionXZ:
		xr, err := xz.NewReader(r, maxDict)
		if err != nil {
			return 0, fmt.Errorf("decompressing part: %w: %w", errdefs.ErrCorrupt, err)
		}
		src = xr
	default:
		return 0, fmt.Errorf("part compression %#x: %w", c, errdefs.ErrUnsupported)
	}
	w := bufio.NewWriterSize(f, 256<<10)
	// Reading to the end makes the xz reader check the stream's integrity.
	n, err := io.Copy(w, io.LimitReader(ctxReader{ctx, src}, max+1))
	if err == nil {
		err = w.Flush()
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		return 0, fmt.Errorf("decompressing part: %w: %w", errdefs.ErrCorrupt, err)
	}
	if n > max {
		return 0, fmt.Errorf("part decompresses to more than %d bytes: %w", max, errdefs.ErrInvalid)
	}
	return n, nil
}

// ctxReader ends a read loop when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
