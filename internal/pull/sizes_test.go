package pull

import (
	"errors"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

func sizesMeta(entries ...[]byte) ostree.Metadata {
	list := make([]any, len(entries))
	for i, e := range entries {
		list[i] = e
	}
	return ostree.Metadata{{Key: ostree.MetaSizes, Value: gvariant.NewVariant("aay", list)}}
}

func sizeEntry(c ostree.Checksum, tail ...byte) []byte { return append(c[:], tail...) }

func TestContentSizes(t *testing.T) {
	t.Parallel()
	file, tree := ostree.Checksum{1}, ostree.Checksum{2}
	big := ostree.Checksum{3}
	// ostree's own bytes for hello.txt: archived 0x30, unpacked 0x0c, type 1; a root
	// dirtree of 273 bytes (0x91 0x02); a 2^40-byte file.
	got, err := contentSizes(sizesMeta(
		sizeEntry(file, 0x30, 0x0c, 0x01),
		sizeEntry(tree, 0x91, 0x02, 0x91, 0x02, 0x02),
		sizeEntry(big, 0x01, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x01),
	))
	if err != nil {
		t.Fatalf("contentSizes() error = %v", err)
	}
	want := map[ostree.Checksum]uint64{file: 12, big: 1 << 40}
	if len(got) != len(want) || got[file] != want[file] || got[big] != want[big] {
		t.Errorf("contentSizes() = %v, want %v (content objects only)", got, want)
	}
	if got, err := contentSizes(nil); got != nil || err != nil {
		t.Errorf("contentSizes(no ostree.sizes) = %v, %v; want nil, nil", got, err)
	}
	for name, m := range map[string]ostree.Metadata{
		"short entry":     sizesMeta(file[:20]),
		"unended varint":  sizesMeta(sizeEntry(file, 0x30, 0x8c)),
		"no type":         sizesMeta(sizeEntry(file, 0x30, 0x0c)),
		"trailing bytes":  sizesMeta(sizeEntry(file, 0x30, 0x0c, 0x01, 0x00)),
		"varint overflow": sizesMeta(sizeEntry(file, 0x30, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, 0x01)),
		"wrong type":      {{Key: ostree.MetaSizes, Value: gvariant.NewVariant("as", []any{"x"})}},
	} {
		if _, err := contentSizes(m); !errors.Is(err, errdefs.ErrCorrupt) {
			t.Errorf("contentSizes(%s) error = %v, want %v", name, err, errdefs.ErrCorrupt)
		}
	}
}

// FuzzContentSizes feeds ostree.sizes entries to the parser: it must not
// panic, and what it accepts, encoded again, parses to the same values.
func FuzzContentSizes(f *testing.F) {
	f.Add(sizeEntry(ostree.Checksum{1}, 0x30, 0x0c, 0x01))
	f.Add(sizeEntry(ostree.Checksum{2}, 0x91, 0x02, 0x91, 0x02, 0x02))
	f.Add([]byte{0x80})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, unpacked, typ, err := parseSizeEntry(b)
		if err != nil {
			return
		}
		again := append(sizeEntry(c, 0), appendUvarint(nil, unpacked)...)
		c2, unpacked2, typ2, err := parseSizeEntry(append(again, byte(typ)))
		if err != nil || c2 != c || unpacked2 != unpacked || typ2 != typ || c != ostree.Checksum(b[:32]) {
			t.Errorf("parseSizeEntry(%x) = %s, %d, %d; encoded again it parses to %s, %d, %d, %v", b, c, unpacked, typ, c2, unpacked2, typ2, err)
		}
	})
}

func appendUvarint(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}
