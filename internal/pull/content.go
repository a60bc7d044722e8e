package pull

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"
	"time"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// objectPath is the URL path of an object relative to the remote's base
// URL (docs/formats/summary.md): content objects are always .filez.
func objectPath(n ostree.ObjectName) string {
	return "objects/" + ostree.LoosePath(n.Checksum, n.Type, true)
}

// minContentRate is the slowest transfer, in bytes per second, that a
// content object is given time for: an object whose payload would take
// longer than Options.RequestTimeout at this rate gets that long instead.
const minContentRate = 256 << 10

// deflateBound is the most compressed bytes a .filez payload of size
// bytes may take. Raw deflate grows incompressible data by 5 bytes per
// 64 KiB stored block; the bound leaves room for any sane encoder, and
// anything past it is refused instead of read forever.
func deflateBound(size uint64) uint64 { return size + size/16 + 64<<10 }

// fetchContent downloads objects/XX/REST.filez, decodes it on the fly and
// stores it through txn, which hashes the stream and keeps the object only
// if it is c (docs/formats/objects.md). Everything
// the server sends is bounded: the header by ostree.MaxHeaderSize, the
// payload by the size the header declares (and maxSize), the compressed
// stream by deflateBound, and nothing may follow the stream.
func (p *puller) fetchContent(ctx context.Context, txn *repo.Txn, c ostree.Checksum) error {
	n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
	return p.tr.withRetry(ctx, func(ctx context.Context) error {
		b, err := p.tr.open(ctx, objectPath(n))
		if err != nil {
			return err
		}
		defer b.Close()
		// The response has come; wait for a turn to decode and store it.
		select {
		case p.writers <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		defer func() { <-p.writers }()
		// The bound sits below the buffer, so that the inflater reads the
		// *bufio.Reader itself: klauspost/flate decodes from one without an
		// interface call per byte.
		lim := &bodyLimit{r: b, max: math.MaxInt64, name: n}
		// Into an archive repository the object is kept as it was received
		// (once its content verifies), not inflated and compressed again:
		// the bytes the bound passes on also go to a spool.
		var spool *repo.Spool
		if txn.Repo().Mode() == repo.ModeArchive {
			if spool, err = txn.NewSpool(); err != nil {
				return err
			}
			defer spool.Discard()
			lim.tee = spool
		}
		dec := getDecoder(lim)
		defer putDecoder(dec)
		br := dec.br
		h, err := ostree.ReadFramedHeader(br)
		if err != nil {
			return fmt.Errorf("content object %s: %w", c, err)
		}
		fi, size, err := ostree.ParseArchiveHeader(h)
		if err != nil {
			return fmt.Errorf("content object %s: %w", c, err)
		}
		known, listed := p.knownSize(c)
		switch {
		case listed && size != known:
			return fmt.Errorf("content object %s declares %d bytes, and its commit's %s says %d: %w", c, size, ostree.MetaSizes, known, errdefs.ErrCorrupt)
		case size > uint64(p.maxContentSize):
			return fmt.Errorf("content object %s declares %d bytes, more than the %d allowed: %w", c, size, p.maxContentSize, errdefs.ErrCorrupt)
		}
		if fi.IsSymlink() && size != 0 {
			return fmt.Errorf("content object %s: symlink with payload size %d: %w", c, size, errdefs.ErrCorrupt)
		}
		b.extendTimeout(time.Duration(size) * time.Second / minContentRate)
		headerLen := int64(8 + len(h))
		bound := uint64(headerLen) + deflateBound(size)
		if b.length >= 0 && uint64(b.length) > bound {
			return fmt.Errorf("content object %s: %d bytes for a %d-byte payload: %w", c, b.length, size, errdefs.ErrCorrupt)
		}
		if err := lim.setMax(int64(bound)); err != nil {
			return err
		}
		var payload io.Reader
		if fi.IsRegular() {
			pr := &payloadReader{zr: dec.inflate(), rest: br, left: int64(size), name: n}
			if !listed {
				// The size is the server's word: bound what each byte it
				// sends may turn into.
				pr.ratio, pr.body, pr.header = p.maxRatio, lim, headerLen
			}
			payload = pr
		}
		// A symlink is its header alone: no deflate stream follows.
		if fi.IsSymlink() {
			if err := expectEOF(br, n); err != nil {
				return err
			}
		}
		if spool != nil && fi.IsRegular() {
			_, err = txn.WriteReceived(fi, payload, int64(size), c, spool, headerLen)
			return err
		}
		_, err = txn.WriteContent(fi, payload, int64(size), &c)
		return err
	})
}

// decoder is the read buffer and inflater of one content object. Both are
// large (64 KiB, and the inflater's 32 KiB window and tables), and a pull
// decodes tens of thousands of objects, so they are pooled: allocating
// them per object made the garbage collector a visible share of a pull's
// CPU.
type decoder struct {
	br *bufio.Reader
	zr io.ReadCloser // nil until the first regular file
}

var decoders = sync.Pool{New: func() any { return &decoder{br: bufio.NewReaderSize(nil, 64<<10)} }}

func getDecoder(r io.Reader) *decoder {
	d := decoders.Get().(*decoder)
	d.br.Reset(r)
	return d
}

// inflate returns the inflater, reset to read a new stream from d.br.
func (d *decoder) inflate() io.Reader {
	if d.zr == nil {
		d.zr = flate.NewReader(d.br)
	} else {
		// Reset of klauspost/flate's reader never fails without a dictionary.
		_ = d.zr.(flate.Resetter).Reset(d.br, nil)
	}
	return d.zr
}

func putDecoder(d *decoder) {
	d.br.Reset(nil)
	decoders.Put(d)
}

// bodyLimit passes on at most max bytes of a response body and reports
// more as corruption; read counts what it passed on (read-ahead included).
type bodyLimit struct {
	r    io.Reader
	read int64
	max  int64
	name ostree.ObjectName
	tee  io.Writer // when not nil, receives every byte passed on
}

func (l *bodyLimit) tooLong() error {
	return fmt.Errorf("content object %s: compressed stream too long for its size: %w", l.name.Checksum, errdefs.ErrCorrupt)
}

// setMax lowers the bound once the header tells it; the buffer may
// already have read past it.
func (l *bodyLimit) setMax(max int64) error {
	l.max = max
	if l.read > max {
		return l.tooLong()
	}
	return nil
}

func (l *bodyLimit) Read(p []byte) (int, error) {
	if l.read >= l.max {
		var one [1]byte
		if n, err := l.r.Read(one[:]); n == 0 {
			return 0, err
		}
		return 0, l.tooLong()
	}
	if int64(len(p)) > l.max-l.read {
		p = p[:l.max-l.read]
	}
	n, err := l.r.Read(p)
	l.read += int64(n)
	if n > 0 && l.tee != nil {
		if _, werr := l.tee.Write(p[:n]); werr != nil {
			return 0, fmt.Errorf("content object %s: %w", l.name.Checksum, werr)
		}
	}
	return n, err
}

// expectEOF checks that nothing follows the object in the body.
func expectEOF(r io.Reader, n ostree.ObjectName) error {
	var one [1]byte
	m, err := r.Read(one[:])
	if m > 0 {
		return fmt.Errorf("content object %s: data after the end of the object: %w", n.Checksum, errdefs.ErrCorrupt)
	}
	if err != nil && err != io.EOF {
		return err
	}
	if err == nil {
		return expectEOF(r, n)
	}
	return nil
}

// payloadReader yields exactly the declared payload size from the
// inflater. With the last payload byte it checks that the deflate stream
// ends there and that the body ends with it, so that the store sees the
// error before it keeps the object. A short stream is corruption, while a
// body cut short by the network is transient (the transport says so).
type payloadReader struct {
	zr   io.Reader
	rest io.Reader
	left int64
	name ostree.ObjectName
	out  int64 // payload bytes produced
	// ratio, when not 0, bounds out by ratio times the compressed bytes read
	// (body.read minus the header) plus ratioSlack.
	ratio  int64
	body   *bodyLimit
	header int64
}

// ratioSlack is the payload any content object may inflate to whatever its
// ratio: small files of zeros are common, and harmless.
const ratioSlack = 1 << 20

func (p *payloadReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	n, err := p.zr.Read(b)
	p.left -= int64(n)
	p.out += int64(n)
	if p.ratio > 0 {
		// The body is read ahead by at most the buffer, so this only errs on
		// the generous side.
		if in := p.body.read - p.header; p.out > p.ratio*in+ratioSlack {
			return 0, fmt.Errorf("content object %s: %d bytes inflate to more than %d, over the %d:1 allowed: %w", p.name.Checksum, in, p.out, p.ratio, errdefs.ErrCorrupt)
		}
	}
	switch {
	case p.left == 0:
		// The last bytes go out only once the end checks pass: io.CopyN (which the
		// store copies with) drops an error that comes with its final byte.
		if err := p.finish(); err != nil {
			return 0, err
		}
		return n, nil
	case err == io.EOF:
		return n, fmt.Errorf("content object %s: payload %d bytes shorter than its header says: %w", p.name.Checksum, p.left, errdefs.ErrCorrupt)
	case err != nil:
		return n, p.streamErr(err)
	}
	return n, nil
}

// finish checks the end of the deflate stream and of the body.
func (p *payloadReader) finish() error {
	var one [1]byte
	for {
		m, err := p.zr.Read(one[:])
		if m > 0 {
			return fmt.Errorf("content object %s: payload longer than its header says: %w", p.name.Checksum, errdefs.ErrCorrupt)
		}
		if err == io.EOF {
			return expectEOF(p.rest, p.name)
		}
		if err != nil {
			return p.streamErr(err)
		}
	}
}

// streamErr keeps transport errors (already classified) and calls
// anything else the inflater says corruption.
func (p *payloadReader) streamErr(err error) error {
	if isTransportErr(err) {
		return err
	}
	return fmt.Errorf("content object %s: %w: %w", p.name.Checksum, errdefs.ErrCorrupt, err)
}

func isTransportErr(err error) bool {
	return errors.Is(err, errdefs.ErrUnavailable) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}
