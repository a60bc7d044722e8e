package delta

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

// Types of the superblock and of its members (docs/formats/static-deltas.md).
var (
	superblockType = gvariant.MustType("(a{sv}tayay(a{sv}aya(say)sstayay)aya(uayttay)a(yaytt))")
	commitType     = gvariant.MustType("(a{sv}aya(say)sstayay)")
	inlinePartType = gvariant.MustType("(yay)")
)

// Metadata keys of a superblock.
const (
	// MetaEndianness is 'l' or 'B': the byte order of the part headers'
	// and fallbacks' integers. strata writes 'l', as libostree does on
	// little-endian hosts.
	MetaEndianness = "ostree.endianness"
)

// MaxSuperblockSize bounds a superblock read from a file or a server. Inline
// parts make a superblock as large as its parts, so this is the limit on
// --inline deltas too.
const MaxSuperblockSize = 64 << 20

// objectRecordSize is the size of one entry of a part header's object list:
// the object type byte and the raw checksum.
const objectRecordSize = 33

// PartHeader describes one part: its checksum (sha256 of the part file),
// its sizes, and the objects it produces, in order.
type PartHeader struct {
	Version          uint32
	Checksum         ostree.Checksum
	Size             uint64 // of the part file: compression byte and payload
	UncompressedSize uint64 // of the serialized payload
	Objects          []ostree.ObjectName
}

// Fallback is an object the delta does not carry, which a client fetches
// loose.
type Fallback struct {
	Object           ostree.ObjectName
	Size             uint64 // compressed (archive) size
	UncompressedSize uint64
}

// Superblock is a delta's index: the target commit itself, the parts and the
// fallback objects.
type Superblock struct {
	Metadata  ostree.Metadata
	Timestamp time.Time
	Name      Name
	Commit    []byte // the serialized target commit object
	Parts     []PartHeader
	Fallbacks []Fallback
}

// DownloadSize is the number of bytes a client downloads to apply the
// delta beyond the superblock: the parts that are not inline and the
// compressed fallback objects.
func (s *Superblock) DownloadSize() uint64 {
	var n uint64
	for i, p := range s.Parts {
		if _, inline := s.Metadata.Get(s.Name.PartPath(i)); !inline {
			n += p.Size
		}
	}
	for _, f := range s.Fallbacks {
		n += f.Size
	}
	return n
}

// Marshal serializes the superblock.
func (s *Superblock) Marshal() ([]byte, error) {
	commit, err := gvariant.Unmarshal(commitType, s.Commit)
	if err != nil {
		return nil, fmt.Errorf("embedding commit %s: %w", s.Name.To, err)
	}
	parts := make([]any, len(s.Parts))
	for i, p := range s.Parts {
		objs := make([]byte, 0, len(p.Objects)*objectRecordSize)
		for _, o := range p.Objects {
			objs = append(objs, byte(o.Type))
			objs = append(objs, o.Checksum[:]...)
		}
		parts[i] = gvariant.Tuple{p.Version, p.Checksum[:], p.Size, p.UncompressedSize, objs}
	}
	fallbacks := make([]any, len(s.Fallbacks))
	for i, f := range s.Fallbacks {
		fallbacks[i] = gvariant.Tuple{uint8(f.Object.Type), f.Object.Checksum[:], f.Size, f.UncompressedSize}
	}
	var from []byte
	if !s.Name.Scratch() {
		from = s.Name.From[:]
	}
	meta := []gvariant.DictEntry(s.Metadata)
	if meta == nil {
		meta = []gvariant.DictEntry{}
	}
	v := gvariant.Tuple{meta, bits.ReverseBytes64(uint64(s.Timestamp.Unix())),
		from, s.Name.To[:], commit, []byte{}, parts, fallbacks}
	return gvariant.Marshal(superblockType, v)
}

// ParseSuperblock decodes a superblock and checks what can be checked
// without a repository: the embedded commit hashes to the target checksum,
// checksums have 32 bytes, object lists whole records of known metadata or
// content types. A signed superblock is errdefs.ErrUnsupported.
func ParseSuperblock(b []byte) (*Superblock, error) {
	if len(b) > MaxSuperblockSize {
		return nil, fmt.Errorf("superblock of %d bytes is larger than %d: %w", len(b), MaxSuperblockSize, errdefs.ErrInvalid)
	}
	if len(b) >= 8 && string(b[:8]) == "OSTSGNDT" {
		return nil, fmt.Errorf("signed superblock: %w", errdefs.ErrUnsupported)
	}
	v, err := gvariant.Unmarshal(superblockType, b)
	if err != nil {
		return nil, fmt.Errorf("decoding superblock: %w", err)
	}
	tu := v.(gvariant.Tuple)
	s := &Superblock{Metadata: ostree.Metadata(tu[0].([]gvariant.DictEntry))}
	ts := bits.ReverseBytes64(tu[1].(uint64))
	s.Timestamp = time.Unix(int64(ts), 0).UTC()
	if from := tu[2].([]byte); len(from) != 0 {
		if s.Name.From, err = ostree.ChecksumFromBytes(from); err != nil || s.Name.From.IsZero() {
			return nil, fmt.Errorf("superblock: from checksum: %w", errdefs.ErrInvalid)
		}
	}
	if s.Name.To, err = ostree.ChecksumFromBytes(tu[3].([]byte)); err != nil {
		return nil, fmt.Errorf("superblock: to checksum: %w", errdefs.ErrInvalid)
	}
	if s.Commit, err = gvariant.Marshal(commitType, tu[4]); err != nil {
		return nil, fmt.Errorf("superblock: re-serializing commit: %w", err)
	}
	if got := ostree.MetadataChecksum(s.Commit); got != s.Name.To {
		return nil, fmt.Errorf("superblock: embedded commit hashes to %s, not to the target %s: %w", got, s.Name.To, errdefs.ErrCorrupt)
	}
	if len(tu[5].([]byte)) != 0 {
		return nil, fmt.Errorf("superblock: recursive deltas: %w", errdefs.ErrUnsupported)
	}
	swap := false
	if e, ok := s.Metadata.Get(MetaEndianness); ok {
		switch e.Value {
		case uint8('l'):
		case uint8('B'):
			swap = true
		default:
			return nil, fmt.Errorf("superblock: endianness %v: %w", e.Value, errdefs.ErrInvalid)
		}
	}
	u32 := func(x uint32) uint32 {
		if swap {
			return bits.ReverseBytes32(x)
		}
		return x
	}
	u64 := func(x uint64) uint64 {
		if swap {
			return bits.ReverseBytes64(x)
		}
		return x
	}
	for i, pv := range tu[6].([]any) {
		p := pv.(gvariant.Tuple)
		h := PartHeader{Version: u32(p[0].(uint32)), Size: u64(p[2].(uint64)), UncompressedSize: u64(p[3].(uint64))}
		if h.Version != 0 {
			return nil, fmt.Errorf("superblock: part %d: version %d: %w", i, h.Version, errdefs.ErrUnsupported)
		}
		if h.Checksum, err = ostree.ChecksumFromBytes(p[1].([]byte)); err != nil {
			return nil, fmt.Errorf("superblock: part %d checksum: %w", i, errdefs.ErrInvalid)
		}
		if h.Objects, err = parseObjects(p[4].([]byte)); err != nil {
			return nil, fmt.Errorf("superblock: part %d: %w", i, err)
		}
		s.Parts = append(s.Parts, h)
	}
	for i, fv := range tu[7].([]any) {
		f := fv.(gvariant.Tuple)
		c, err := ostree.ChecksumFromBytes(f[1].([]byte))
		typ := ostree.ObjectType(f[0].(uint8))
		if err != nil || !partObjectType(typ) {
			return nil, fmt.Errorf("superblock: fallback %d: %w", i, errdefs.ErrInvalid)
		}
		s.Fallbacks = append(s.Fallbacks, Fallback{Object: ostree.ObjectName{Checksum: c, Type: typ},
			Size: u64(f[2].(uint64)), UncompressedSize: u64(f[3].(uint64))})
	}
	return s, nil
}

// partObjectType reports whether objects of type t may travel in a delta.
func partObjectType(t ostree.ObjectType) bool {
	return t == ostree.ObjectFile || t == ostree.ObjectDirTree || t == ostree.ObjectDirMeta
}

func parseObjects(b []byte) ([]ostree.ObjectName, error) {
	if len(b)%objectRecordSize != 0 {
		return nil, fmt.Errorf("object list of %d bytes: %w", len(b), errdefs.ErrInvalid)
	}
	out := make([]ostree.ObjectName, 0, len(b)/objectRecordSize)
	for ; len(b) > 0; b = b[objectRecordSize:] {
		n := ostree.ObjectName{Type: ostree.ObjectType(b[0]), Checksum: ostree.Checksum(b[1:objectRecordSize])}
		if !partObjectType(n.Type) {
			return nil, fmt.Errorf("object type %d in a part: %w", b[0], errdefs.ErrInvalid)
		}
		out = append(out, n)
	}
	return out, nil
}
