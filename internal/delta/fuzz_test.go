package delta

import (
	"bytes"
	"context"
	"errors"
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

// TestPartBounds: a part that decompresses past MaxPartSize, or whose
// header declares more, is refused without holding more than that.
func TestPartBounds(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	buf.WriteByte(compressionXZ)
	w, _ := xz.NewWriter(&buf)
	zeros := make([]byte, 1<<20)
	for range MaxPartSize>>20 + 1 {
		w.Write(zeros)
	}
	w.Close()
	file := buf.Bytes()
	h := PartHeader{Checksum: sumOf(file), Size: uint64(len(file)), UncompressedSize: 1 << 20}
	if _, err := OpenPart(file, h); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("OpenPart(%d MiB bomb) = %v, want ErrInvalid", MaxPartSize>>20+1, err)
	}
	h.UncompressedSize = 8 << 30
	if _, err := OpenPart(file, h); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("OpenPart(declared 8 GiB) = %v, want ErrInvalid", err)
	}
	h.UncompressedSize = 1 << 20
	h.Checksum[0] ^= 1
	if _, err := OpenPart(file, h); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("OpenPart(wrong checksum) = %v, want ErrCorrupt", err)
	}
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
