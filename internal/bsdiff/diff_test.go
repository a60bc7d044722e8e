package bsdiff

import (
	"bytes"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
)

func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// roundTrip checks that Diff's patch makes new of old and returns the patch.
func roundTrip(t *testing.T, old, new []byte) ([]byte, Stats) {
	t.Helper()
	patch, st := Diff(old, new)
	got, err := Patch(old, int64(len(new)), patch)
	if err != nil {
		t.Fatalf("Patch(Diff(%d bytes, %d bytes)) = %v", len(old), len(new), err)
	}
	if !bytes.Equal(got, new) {
		t.Fatalf("Patch(Diff(old, new)) differs from new (%d bytes, want %d)", len(got), len(new))
	}
	if st.Same+st.Changed+st.Extra != len(new) {
		t.Fatalf("Diff stats %+v do not add up to %d bytes", st, len(new))
	}
	return patch, st
}

func TestDiffRoundTrip(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	base := randBytes(rng, 200_000)
	moved := slices.Concat(base[120_000:], base[:50_000], []byte("inserted"), base[50_000:120_000])
	edited := bytes.Clone(base)
	for i := 0; i < len(edited); i += 4096 {
		edited[i]++
	}
	zeros := make([]byte, 100_000)
	for _, tc := range []struct {
		name     string
		old, new []byte
		minSame  float64 // share of new copied unchanged
	}{
		{"empty both", nil, nil, 0},
		{"empty old", nil, base[:1000], 0},
		{"empty new", base[:1000], nil, 0},
		{"identical", base, base, 1},
		{"blocks moved and inserted", base, moved, 0.99},
		{"one byte in 4096 changed", base, edited, 0.99},
		{"unrelated", base[:5000], randBytes(rng, 5000), 0},
		{"runs of zeros", zeros, append(bytes.Clone(zeros[:60_000]), append([]byte{1, 2, 3}, zeros[:40_000]...)...), 0.99},
		{"text", []byte("the quick brown fox jumps over the lazy dog"), []byte("the quick red fox jumped over the lazy dogs"), 0.5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, st := roundTrip(t, tc.old, tc.new)
			if len(tc.new) > 0 && float64(st.Same)/float64(len(tc.new)) < tc.minSame {
				t.Errorf("Diff: %d of %d bytes unchanged, want at least %.0f%%", st.Same, len(tc.new), 100*tc.minSame)
			}
		})
	}
}

// TestSortedSuffixes compares the suffix sort with a naive one, in Go
// memory and (from mapMin bytes) in a mapping.
func TestSortedSuffixes(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 1))
	for _, b := range [][]byte{nil, []byte("a"), []byte("banana"), bytes.Repeat([]byte("a"), 300),
		bytes.Repeat([]byte("abcab"), 40), randBytes(rng, 3000), []byte{0, 0, 1, 0, 0, 1, 255, 0},
		make([]byte, 70_000), randBytes(rng, 200_000), randBytes(rng, mapMin)} {
		want := make([]int32, len(b)+1)
		for i := range want {
			want[i] = int32(i)
		}
		slices.SortFunc(want, func(x, y int32) int { return bytes.Compare(b[x:], b[y:]) })
		got, release := sortedSuffixes(b)
		if !slices.Equal(got, want) {
			t.Errorf("sortedSuffixes(%d bytes %q) = %v, want %v", len(b), b[:min(len(b), 20)], got[:min(len(got), 20)], want[:min(len(want), 20)])
		}
		release()
	}
}

// FuzzDiff: any two inputs round-trip through Diff and Patch.
func FuzzDiff(f *testing.F) {
	f.Add([]byte("hello, world"), []byte("hello, there world"))
	f.Add([]byte{}, []byte("x"))
	f.Add(bytes.Repeat([]byte{0}, 100), bytes.Repeat([]byte{0, 1}, 60))
	f.Fuzz(func(t *testing.T, old, new []byte) {
		roundTrip(t, old, new)
	})
}

// BenchmarkDiff: a 4 MiB file with one byte in 4096 changed and a block moved.
func BenchmarkDiff(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	old := randBytes(rng, 4<<20)
	new := slices.Concat(old[1<<20:], old[:1<<20])
	for i := 0; i < len(new); i += 4096 {
		new[i]++
	}
	b.SetBytes(int64(len(old)))
	for b.Loop() {
		Diff(old, new)
	}
}

// BenchmarkSuffixes: sorting the suffixes of 4 MiB, a third of them zeros.
func BenchmarkSuffixes(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := randBytes(rng, 4<<20)
	for i := 0; i < len(data); i += 3 {
		data[i] = 0
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		_, release := sortedSuffixes(data)
		release()
	}
}

// TestSuffixesNotInHeap: the suffix array of a large file is not Go memory,
// so that it does not count twice in the heap while the index's own array
// is alive (see sortedSuffixes): sorting 4 MiB allocates the index's array
// (16 MiB) on the heap, not a second one.
func TestSuffixesNotInHeap(t *testing.T) {
	data := randBytes(rand.New(rand.NewPCG(5, 6)), 4<<20)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	sa, release := sortedSuffixes(data)
	runtime.ReadMemStats(&after)
	defer release()
	if len(sa) != len(data)+1 {
		t.Fatalf("sortedSuffixes returned %d suffixes, want %d", len(sa), len(data)+1)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 6*uint64(len(data)) {
		t.Errorf("sorting %d bytes allocated %d bytes of Go memory, want at most %d (the index's array and a little)", len(data), alloc, 6*len(data))
	}
}
