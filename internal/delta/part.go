package delta

import (
	"bytes"
	"fmt"
	"math/bits"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/xzenc"
)

var partType = gvariant.MustType("(a(uuu)aa(ayay)ayay)")

// Compression bytes that open a part file.
const (
	compressionNone byte = 0
	compressionXZ   byte = 'x'
)

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

// ParsePart decodes an uncompressed payload held in memory.
func ParsePart(b []byte) (*Part, error) {
	pl, err := splitPayload(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, err
	}
	raw := make([]byte, pl.rawLen)
	if _, err := pl.raw.ReadAt(raw, 0); err != nil && pl.rawLen > 0 {
		return nil, fmt.Errorf("decoding part: %w", err)
	}
	return &Part{Modes: pl.modes, Xattrs: pl.xattrs, Raw: raw, Ops: pl.ops}, nil
}

// payload returns the part as the machine reads it.
func (p *Part) payload() *payload {
	return &payload{modes: p.Modes, xattrs: p.Xattrs, raw: bytes.NewReader(p.Raw), rawLen: int64(len(p.Raw)), ops: p.Ops}
}

func be32(x uint32) uint32 { return bits.ReverseBytes32(x) }

// compressPart returns the part file for a payload: the xz compression
// byte and the xz stream, compressed as xz -6 does (package xzenc: an 8 MiB
// dictionary and optimal parsing), with about 80 MiB of memory for a
// payload of 8 MiB or more.
func compressPart(payload []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte(compressionXZ)
	if err := xzenc.Encode(&buf, payload, nil); err != nil {
		return nil, fmt.Errorf("compressing part: %w", err)
	}
	return buf.Bytes(), nil
}
