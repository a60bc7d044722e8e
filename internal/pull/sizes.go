package pull

import (
	"fmt"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// contentSizes reads the commit metadata's ostree.sizes, which `ostree
// commit --generate-sizes` writes (docs/threat-model.md): one entry per
// object the commit wrote, raw 32-byte checksum, LEB128 archived size,
// LEB128 unpacked size, object type byte. It returns the unpacked size of
// every content object listed. The commit is verified before this is
// read, so these sizes come from the signer, not from the server; an
// entry that does not parse makes the commit corrupt.
func contentSizes(m ostree.Metadata) (map[ostree.Checksum]uint64, error) {
	v, ok := m.Get(ostree.MetaSizes)
	if !ok {
		return nil, nil
	}
	entries, ok := v.Value.([]any)
	if !ok || v.Type.String() != "aay" {
		return nil, fmt.Errorf("%s is a %s, not an aay: %w", ostree.MetaSizes, v.Type, errdefs.ErrCorrupt)
	}
	out := make(map[ostree.Checksum]uint64, len(entries))
	for i, e := range entries {
		b, _ := e.([]byte)
		c, unpacked, typ, err := parseSizeEntry(b)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d: %w", ostree.MetaSizes, i, err)
		}
		if typ == ostree.ObjectFile {
			out[c] = unpacked
		}
	}
	return out, nil
}

func parseSizeEntry(b []byte) (c ostree.Checksum, unpacked uint64, typ ostree.ObjectType, err error) {
	if len(b) < len(c) {
		return c, 0, 0, fmt.Errorf("%d bytes, shorter than a checksum: %w", len(b), errdefs.ErrCorrupt)
	}
	copy(c[:], b)
	b = b[len(c):]
	if _, b, err = uvarint(b); err != nil { // archived size: depends on the server's compression
		return c, 0, 0, err
	}
	if unpacked, b, err = uvarint(b); err != nil {
		return c, 0, 0, err
	}
	if len(b) != 1 {
		return c, 0, 0, fmt.Errorf("%d bytes after the sizes, want the object type alone: %w", len(b), errdefs.ErrCorrupt)
	}
	return c, unpacked, ostree.ObjectType(b[0]), nil
}

// uvarint decodes a LEB128 unsigned integer of at most 64 bits.
func uvarint(b []byte) (uint64, []byte, error) {
	var x uint64
	for i := 0; i < len(b) && i < 10; i++ {
		x |= uint64(b[i]&0x7f) << (7 * i)
		if b[i] < 0x80 {
			if i == 9 && b[i] > 1 {
				break
			}
			return x, b[i+1:], nil
		}
	}
	return 0, nil, fmt.Errorf("bad varint: %w", errdefs.ErrCorrupt)
}
