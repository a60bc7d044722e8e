package gvariant_test

import (
	"fmt"
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
)

// bigDirTree is a dirtree like tree2:/big of the test vectors: 3000 files
// f0000…f2999 with one content checksum, no subdirectories; it serializes to
// 129,004 bytes with 4-byte offsets (docs/formats/gvariant.md).
func bigDirTree(tb testing.TB) (*gvariant.Type, gvariant.Tuple, []byte) {
	tb.Helper()
	sum := hx(sumHelloTxt)
	files := make([]any, 3000)
	for i := range files {
		files[i] = gvariant.Tuple{fmt.Sprintf("f%04d", i), sum}
	}
	typ := gvariant.MustType(sigDirTree)
	val := gvariant.Tuple{files, []any{}}
	data, err := gvariant.Marshal(typ, val)
	if err != nil {
		tb.Fatalf("Marshal(%s, 3000-file dirtree) error: %v", sigDirTree, err)
	}
	if len(data) != 129004 {
		tb.Fatalf("len(Marshal(%s, 3000-file dirtree)) = %d, want 129004", sigDirTree, len(data))
	}
	return typ, val, data
}

func BenchmarkMarshalDirtree(b *testing.B) {
	typ, val, data := bigDirTree(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gvariant.Marshal(typ, val); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalDirtree(b *testing.B) {
	typ, _, data := bigDirTree(b)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := gvariant.Unmarshal(typ, data); err != nil {
			b.Fatal(err)
		}
	}
}

func TestBigDirTree(t *testing.T) {
	t.Parallel()
	typ, val, _ := bigDirTree(t)
	roundTrip(t, typ, val)
}
