package bsdiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

func offtout(x int64) []byte {
	u := uint64(x)
	if x < 0 {
		u = uint64(-x) | 1<<63
	}
	return binary.LittleEndian.AppendUint64(nil, u)
}

func ctrl(add, extra, seek int64) []byte {
	return append(append(offtout(add), offtout(extra)...), offtout(seek)...)
}

func TestPatch(t *testing.T) {
	t.Parallel()
	old := []byte("hello, world")
	// "hello, there!": 7 bytes added to old (diff 0), 6 extra bytes.
	patch := append(ctrl(7, 6, 5), make([]byte, 7)...)
	patch = append(patch, "there!"...)
	got, err := Patch(old, 13, patch)
	if err != nil || string(got) != "hello, there!" {
		t.Fatalf("Patch = %q, %v, want %q", got, err, "hello, there!")
	}
	// A diff byte adds to the old byte: 'h'+1 = 'i'.
	got, err = Patch(old, 1, append(ctrl(1, 0, 0), 1))
	if err != nil || string(got) != "i" {
		t.Fatalf("Patch(add) = %q, %v, want \"i\"", got, err)
	}
	// Old bytes past the end count as zero; a negative seek moves back.
	got, err = Patch(old, 2, append(append(ctrl(1, 0, -100), 'a'), append(ctrl(1, 0, 0), 'b')...))
	if err != nil || !bytes.Equal(got, []byte{'h' + 'a', 'b'}) {
		t.Fatalf("Patch(seek) = %q, %v", got, err)
	}
}

func TestPatchBounds(t *testing.T) {
	t.Parallel()
	old := []byte("0123456789")
	for _, tc := range []struct {
		name  string
		size  int64
		patch []byte
	}{
		{"empty patch", 5, nil},
		{"short control", 5, []byte{1, 2, 3}},
		{"add past new size", 5, append(ctrl(6, 0, 0), make([]byte, 6)...)},
		{"extra past new size", 5, append(ctrl(0, 6, 0), make([]byte, 6)...)},
		{"diff past patch", 5, ctrl(5, 0, 0)},
		{"extra past patch", 5, ctrl(0, 5, 0)},
		{"negative add", 5, ctrl(-1, 0, 0)},
		{"negative extra", 5, ctrl(0, -1, 0)},
		{"huge add", 5, ctrl(1<<62, 0, 0)},
		{"negative size", -1, nil},
		{"gigabytes from nothing", 1 << 40, ctrl(0, 0, 0)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := Patch(old, tc.size, tc.patch); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Patch = %q, %v, want ErrInvalid", got, err)
			}
		})
	}
}

func FuzzPatch(f *testing.F) {
	f.Add([]byte("hello, world"), int64(13), append(append(ctrl(7, 6, 5), make([]byte, 7)...), "there!"...))
	f.Add([]byte("x"), int64(2), append(ctrl(1, 0, -3), 7))
	// Diff bytes longer than a piece, reaching past the old file.
	f.Add(bytes.Repeat([]byte{1}, 300<<10), int64(300<<10+10), append(ctrl(300<<10+10, 0, 0), make([]byte, 300<<10+10)...))
	f.Fuzz(func(t *testing.T, old []byte, size int64, patch []byte) {
		if size > 1<<20 {
			size %= 1 << 20
		}
		out, err := Patch(old, size, patch)
		if err == nil && int64(len(out)) != size {
			t.Fatalf("Patch returned %d bytes, want %d", len(out), size)
		}
		var buf bytes.Buffer
		err2 := PatchTo(&buf, old, size, patch)
		if (err == nil) != (err2 == nil) || (err == nil && !bytes.Equal(buf.Bytes(), out)) {
			t.Fatalf("PatchTo = %v (%d bytes), Patch = %v (%d bytes)", err2, buf.Len(), err, len(out))
		}
		if want, ok := naivePatch(old, size, patch); ok != (err == nil) || (ok && !bytes.Equal(out, want)) {
			t.Fatalf("Patch = %v, %d bytes; byte-at-a-time patch ok=%v, %d bytes", err, len(out), ok, len(want))
		}
	})
}

// naivePatch applies a patch one byte at a time, trusting nothing.
func naivePatch(old []byte, size int64, patch []byte) ([]byte, bool) {
	if size < 0 || size > int64(len(patch)) {
		return nil, false
	}
	var out []byte
	var oldPos int64
	for int64(len(out)) < size {
		if len(patch) < 24 {
			return nil, false
		}
		add, extra, seek := offtin(patch[0:8]), offtin(patch[8:16]), offtin(patch[16:24])
		patch = patch[24:]
		if add < 0 || extra < 0 || add > size-int64(len(out)) || add > int64(len(patch)) {
			return nil, false
		}
		for i := range add {
			d := patch[i]
			if o := oldPos + i; o >= 0 && o < int64(len(old)) {
				d += old[o]
			}
			out = append(out, d)
		}
		patch = patch[add:]
		oldPos += add
		if extra > size-int64(len(out)) || extra > int64(len(patch)) {
			return nil, false
		}
		out = append(out, patch[:extra]...)
		patch = patch[extra:]
		if (seek > 0 && oldPos > (1<<62)) || (seek < 0 && oldPos < -(1<<62)) {
			return nil, false
		}
		oldPos += seek
	}
	return out, true
}
