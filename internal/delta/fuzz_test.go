package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/ulikunitz/xz"
)

// FuzzParseSuperblock: any bytes give a superblock or an error, never a
// panic, and a superblock that parses re-serializes to one that parses the
// same.
func FuzzParseSuperblock(f *testing.F) {
	fx := newFixture(f, repo.ModeArchive)
	for _, inline := range []bool{false, true} {
		sb, err := Generate(context.Background(), fx.src, fx.c1, fx.c2, Options{Inline: inline, MinFallbackSize: 100 << 10})
		if err != nil {
			f.Fatal(err)
		}
		b, _ := ReadSuperblockFile(fx.src, sb.Name)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := ParseSuperblock(b)
		if err != nil {
			return
		}
		again, err := sb.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a parsed superblock: %v", err)
		}
		if _, err := ParseSuperblock(again); err != nil {
			t.Fatalf("re-parsing: %v", err)
		}
	})
}

// FuzzPart: any payload runs as a part program against a repository
// without panicking, and stores only objects that hash to their names.
func FuzzPart(f *testing.F) {
	p := &Part{Modes: []Mode{{Mode: ostree.ModeReg | 0o644}}, Xattrs: [][]ostree.Xattr{{}}, Raw: []byte("hello\n")}
	p.Ops = appendVarint(append(appendVarint(appendVarint(appendVarint([]byte{opOpenSpliceAndClose}, 0), 0), 6), 0), 0)
	b, _ := p.Marshal()
	f.Add(b, byte(ostree.ObjectFile))
	p.Ops = []byte{opOpen, 0, 0, 6, opWrite, 6, 0, opClose}
	b, _ = p.Marshal()
	f.Add(b, byte(ostree.ObjectFile))
	p.Ops = []byte{opOpenSpliceAndClose, 6, 0}
	b, _ = p.Marshal()
	f.Add(b, byte(ostree.ObjectDirMeta))
	r, err := repo.Init(f.TempDir()+"/r", repo.ModeArchive)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, payload []byte, typ byte) {
		part, err := ParsePart(payload)
		if err != nil {
			return
		}
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		objs := []ostree.ObjectName{{Type: ostree.ObjectType(typ%3 + 1)}, {Type: ostree.ObjectFile}}
		if err := run(txn, part, objs); err == nil {
			t.Fatalf("program produced objects with the zero checksum")
		}
	})
}

// TestPartBounds: a part that decompresses past its bound, or whose
// header declares more, or that does not match its header, is refused;
// the spool never grows past the bound.
func TestPartBounds(t *testing.T) {
	t.Parallel()
	const bound = 4 << 20
	var buf bytes.Buffer
	buf.WriteByte(compressionXZ)
	w, _ := xz.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for range 64 {
		w.Write(zeros)
	}
	w.Close()
	file := buf.Bytes()
	dir := t.TempDir()
	spool := func(h PartHeader, file []byte) error {
		sp, err := spoolPart(context.Background(), bytes.NewReader(file), h, dir, bound)
		if err == nil {
			sp.f.Close()
		}
		return err
	}
	h := PartHeader{Checksum: sumOf(file), Size: uint64(len(file)), UncompressedSize: 1 << 20}
	if err := spool(h, file); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("spoolPart(64 MiB bomb, bound 4 MiB) = %v, want ErrInvalid", err)
	}
	h.UncompressedSize = 8 << 30
	if err := spool(h, file); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("spoolPart(declared 8 GiB) = %v, want ErrInvalid", err)
	}
	h.UncompressedSize = 1 << 20
	bad := h
	bad.Checksum[0] ^= 1
	if err := spool(bad, file); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("spoolPart(wrong checksum) = %v, want ErrCorrupt", err)
	}
	if err := spool(h, file[:len(file)-1]); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("spoolPart(truncated) = %v, want ErrCorrupt", err)
	}
	if err := spool(h, append(bytes.Clone(file), 0)); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("spoolPart(one byte more) = %v, want ErrCorrupt", err)
	}
	big := hugeDict(t)
	h = PartHeader{Checksum: sumOf(big), Size: uint64(len(big)), UncompressedSize: 5}
	if err := spool(h, big); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("spoolPart(96 MiB dictionary) = %v, want ErrCorrupt", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("spoolPart left %d files in its directory", len(ents))
	}
}

// hugeDict returns a part file whose xz stream declares a 96 MiB
// dictionary, more than maxDict, for five bytes: the LZMA2 filter's
// dictionary byte in the block header is raised and the header's CRC32
// recomputed.
func hugeDict(t *testing.T) []byte {
	var buf bytes.Buffer
	w, _ := xz.WriterConfig{DictCap: 1 << 20}.NewWriter(&buf)
	w.Write([]byte("hello"))
	w.Close()
	b := buf.Bytes()
	const start = 12 // after the stream header
	size := (int(b[start]) + 1) * 4
	hdr := b[start : start+size]
	i := bytes.Index(hdr, []byte{0x21, 0x01})
	if i < 0 {
		t.Fatalf("no LZMA2 filter in block header % x", hdr)
	}
	hdr[i+2] = 29 // 3 << 25 bytes
	binary.LittleEndian.PutUint32(hdr[size-4:], crc32.ChecksumIEEE(hdr[:size-4]))
	return append([]byte{compressionXZ}, b...)
}

// TestProgramBounds: operations that reach outside the part's raw bytes or
// tables, or produce objects the header does not list, are errors and store
// nothing.
func TestProgramBounds(t *testing.T) {
	t.Parallel()
	r, err := repo.Init(t.TempDir()+"/r", repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	content := []byte("hello\n")
	fi := ostree.FileInfo{Mode: ostree.ModeReg | 0o644}
	c, _ := ostree.ContentChecksum(fi, bytes.NewReader(content))
	obj := []ostree.ObjectName{{Checksum: c, Type: ostree.ObjectFile}}
	base := Part{Modes: []Mode{{Mode: ostree.ModeReg | 0o644}}, Xattrs: [][]ostree.Xattr{{}}, Raw: content}
	for _, tc := range []struct {
		name string
		ops  []byte
		objs []ostree.ObjectName
	}{
		{"splice past raw", []byte{opOpenSpliceAndClose, 0, 0, 6, 1}, obj},
		{"huge offset", appendVarint([]byte{opOpenSpliceAndClose, 0, 0, 6}, 1<<63), obj},
		{"mode index", []byte{opOpenSpliceAndClose, 5, 0, 6, 0}, obj},
		{"write past raw", []byte{opOpen, 0, 0, 6, opWrite, 6, 1, opClose}, obj},
		{"write past size", []byte{opOpen, 0, 0, 5, opWrite, 6, 0, opClose}, obj},
		{"short object", []byte{opOpen, 0, 0, 6, opWrite, 5, 0, opClose}, obj},
		{"unclosed object", []byte{opOpen, 0, 0, 6, opWrite, 6, 0}, obj},
		{"more objects than listed", []byte{opOpenSpliceAndClose, 0, 0, 6, 0, opOpenSpliceAndClose, 0, 0, 6, 0}, obj},
		{"read source past raw", []byte{opSetReadSource, 0}, obj},
		{"bspatch without read source", []byte{opOpen, 0, 0, 6, opBspatch, 0, 6, opClose}, obj},
		{"bspatch past raw", []byte{opOpen, 0, 0, 6, opBspatch, 0, 7, opClose}, obj},
		{"truncated varint", []byte{opOpenSpliceAndClose, 0x80}, obj},
		{"unknown op", []byte{'Z'}, obj},
	} {
		t.Run(tc.name, func(t *testing.T) {
			txn, err := r.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer txn.Abort()
			p := base
			p.Ops = tc.ops
			if err := run(txn, &p, tc.objs); err == nil {
				t.Fatalf("run(%q) = nil, want an error", tc.ops)
			}
		})
	}
	if ok, _ := r.HasObject(obj[0]); ok {
		t.Errorf("a failed program stored %s", obj[0])
	}
}
