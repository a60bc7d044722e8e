package delta

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"math/bits"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/ulikunitz/xz"
)

var partType = gvariant.MustType("(a(uuu)aa(ayay)ayay)")

// Compression bytes that open a part file.
const (
	compressionNone byte = 0
	compressionXZ   byte = 'x'
)

// MaxPartSize bounds the uncompressed payload of one part that strata
// applies; parts are decoded whole, so this bounds the memory one part
// takes. libostree's generator splits parts at 32 MB by default.
const MaxPartSize = 64 << 20

// Operation bytes of a part's program (docs/formats/static-deltas.md).
const (
	opOpenSpliceAndClose = 'S'
	opOpen               = 'o'
	opWrite              = 'w'
	opSetReadSource      = 'r'
	opUnsetReadSource    = 'R'
	opClose              = 'c'
	opBspatch            = 'B'
)

// Mode is one entry of a part's table of file modes.
type Mode struct {
	UID, GID, Mode uint32
}

// Part is the decoded payload of a part: tables of modes and xattr sets
// that content operations point into, the raw bytes they splice, and the
// program of operations.
type Part struct {
	Modes  []Mode
	Xattrs [][]ostree.Xattr
	Raw    []byte
	Ops    []byte
}

// Marshal serializes the payload (uncompressed).
func (p *Part) Marshal() ([]byte, error) {
	modes := make([]any, len(p.Modes))
	for i, m := range p.Modes {
		// libostree writes the mode table big-endian.
		modes[i] = gvariant.Tuple{be32(m.UID), be32(m.GID), be32(m.Mode)}
	}
	xattrs := make([]any, len(p.Xattrs))
	for i, set := range p.Xattrs {
		xs := make([]any, len(set))
		for j, x := range set {
			xs[j] = gvariant.Tuple{append([]byte(x.Name), 0), x.Value}
		}
		xattrs[i] = xs
	}
	return gvariant.Marshal(partType, gvariant.Tuple{modes, xattrs, p.Raw, p.Ops})
}

// ParsePart decodes an uncompressed payload.
func ParsePart(b []byte) (*Part, error) {
	v, err := gvariant.Unmarshal(partType, b)
	if err != nil {
		return nil, fmt.Errorf("decoding part: %w", err)
	}
	tu := v.(gvariant.Tuple)
	p := &Part{Raw: tu[2].([]byte), Ops: tu[3].([]byte)}
	for _, mv := range tu[0].([]any) {
		m := mv.(gvariant.Tuple)
		p.Modes = append(p.Modes, Mode{UID: be32(m[0].(uint32)), GID: be32(m[1].(uint32)), Mode: be32(m[2].(uint32))})
	}
	for _, sv := range tu[1].([]any) {
		var set []ostree.Xattr
		for _, xv := range sv.([]any) {
			x := xv.(gvariant.Tuple)
			name := x[0].([]byte)
			if len(name) == 0 || name[len(name)-1] != 0 || bytes.IndexByte(name[:len(name)-1], 0) >= 0 {
				return nil, fmt.Errorf("part: xattr name %q not NUL-terminated: %w", name, errdefs.ErrInvalid)
			}
			set = append(set, ostree.Xattr{Name: string(name[:len(name)-1]), Value: x[1].([]byte)})
		}
		p.Xattrs = append(p.Xattrs, set)
	}
	return p, nil
}

func be32(x uint32) uint32 { return bits.ReverseBytes32(x) }

// compressPart returns the part file for a payload: the xz compression
// byte and the xz stream.
func compressPart(payload []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(compressionXZ)
	w, err := xz.WriterConfig{DictCap: 8 << 20}.NewWriter(&buf)
	if err != nil {
		return nil, fmt.Errorf("compressing part: %w", err)
	}
	if _, err := w.Write(payload); err != nil {
		return nil, fmt.Errorf("compressing part: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("compressing part: %w", err)
	}
	return buf.Bytes(), nil
}

// OpenPart checks a part file against its header and returns the decoded
// payload: the file's sha256 and size must match the header before anything
// is decompressed, and the payload may not exceed MaxPartSize, so a part that
// decompresses to gigabytes is cut off there. The header's uncompressed size
// is advisory: libostree's generator records a size a little below the
// payload's, and its own client reads to the end of the stream.
func OpenPart(file []byte, h PartHeader) (*Part, error) {
	if uint64(len(file)) != h.Size {
		return nil, fmt.Errorf("part has %d bytes, its header says %d: %w", len(file), h.Size, errdefs.ErrCorrupt)
	}
	if got := ostree.Checksum(sha256.Sum256(file)); got != h.Checksum {
		return nil, fmt.Errorf("part hashes to %s, its header says %s: %w", got, h.Checksum, errdefs.ErrCorrupt)
	}
	if h.UncompressedSize > MaxPartSize {
		return nil, fmt.Errorf("part of %d bytes uncompressed is larger than %d: %w", h.UncompressedSize, MaxPartSize, errdefs.ErrInvalid)
	}
	payload, err := decompressPart(file)
	if err != nil {
		return nil, err
	}
	return ParsePart(payload)
}

// decompressPart decompresses a part file, at most MaxPartSize bytes of it.
func decompressPart(file []byte) ([]byte, error) {
	if len(file) == 0 {
		return nil, fmt.Errorf("empty part: %w", errdefs.ErrCorrupt)
	}
	var r io.Reader
	switch file[0] {
	case compressionNone:
		r = bytes.NewReader(file[1:])
	case compressionXZ:
		xr, err := xz.NewReader(bytes.NewReader(file[1:]))
		if err != nil {
			return nil, fmt.Errorf("decompressing part: %w: %w", errdefs.ErrCorrupt, err)
		}
		r = xr
	default:
		return nil, fmt.Errorf("part compression %#x: %w", file[0], errdefs.ErrUnsupported)
	}
	// Reading to the end makes the xz reader check the stream's integrity.
	out, err := io.ReadAll(io.LimitReader(r, MaxPartSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing part: %w: %w", errdefs.ErrCorrupt, err)
	}
	if len(out) > MaxPartSize {
		return nil, fmt.Errorf("part decompresses to more than %d bytes: %w", MaxPartSize, errdefs.ErrInvalid)
	}
	return out, nil
}
