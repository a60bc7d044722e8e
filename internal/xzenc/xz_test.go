package xzenc

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"testing"

	rootxz "github.com/therootcompany/xz"
	ulxz "github.com/ulikunitz/xz"
)

func encode(t testing.TB, src []byte, o *Options) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := Encode(&b, src, o); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// decodeGo decodes xzb with the two Go decoders strata uses and checks
// that both give src.
func decodeGo(t testing.TB, xzb, src []byte) {
	t.Helper()
	r1, err := rootxz.NewReader(bytes.NewReader(xzb), 1<<26)
	if err != nil {
		t.Fatalf("therootcompany/xz: %v", err)
	}
	got, err := io.ReadAll(r1)
	if err != nil {
		t.Fatalf("therootcompany/xz: %v", err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("therootcompany/xz decoded %d bytes, not the %d encoded", len(got), len(src))
	}
	r2, err := ulxz.NewReader(bytes.NewReader(xzb))
	if err != nil {
		t.Fatalf("ulikunitz/xz: %v", err)
	}
	got, err = io.ReadAll(r2)
	if err != nil {
		t.Fatalf("ulikunitz/xz: %v", err)
	}
	if !bytes.Equal(got, src) {
		t.Fatalf("ulikunitz/xz decoded %d bytes, not the %d encoded", len(got), len(src))
	}
}

type corpus struct {
	name string
	data []byte
	opts *Options
}

// words makes n bytes of text from a small vocabulary: compressible,
// with matches at every distance.
func words(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	vocab := strings.Fields("the of and to in is that for it as with was on be by at this from or which an are have not had but were all one their there been has more if when out so can some what into only other new")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(vocab[rng.IntN(len(vocab))])
		if rng.IntN(10) == 0 {
			fmt.Fprintf(&b, " %d\n", rng.IntN(100000))
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:n]
}

func random(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, 2))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		binary.LittleEndian.PutUint64(b[i:], rng.Uint64())
	}
	return b
}

// payload is shaped like a static-delta part: whole files (here the test
// binary, machine code and data as a real part carries), then the same
// content again with small edits every few KiB, as a new version of a
// file is, and a run of bsdiff-like near-zero bytes.
func payload(t testing.TB) []byte {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	bin = bin[:min(len(bin), 3<<20)]
	edited := bytes.Clone(bin)
	rng := rand.New(rand.NewPCG(7, 7))
	for i := 0; i < len(edited); i += 1 + rng.IntN(8192) {
		edited[i] ^= byte(rng.IntN(255) + 1)
	}
	diff := make([]byte, 1<<20)
	for i := 0; i < len(diff); i += 1 + rng.IntN(300) {
		diff[i] = byte(rng.IntN(5))
	}
	return append(append(bin, edited...), diff...)
}

var (
	corporaOnce sync.Once
	corporaList []corpus
	encodedMu   sync.Mutex
	encoded     = map[string][]byte{}
)

// corpora returns the test inputs, made once per test binary.
func corpora(t testing.TB) []corpus {
	corporaOnce.Do(func() { corporaList = makeCorpora(t) })
	return corporaList
}

// encodeCorpus returns the stream of a corpus, encoded once per test
// binary: the tests that decode it several ways share it.
func encodeCorpus(t testing.TB, c corpus) []byte {
	t.Helper()
	encodedMu.Lock()
	defer encodedMu.Unlock()
	if b, ok := encoded[c.name]; ok {
		return b
	}
	b := encode(t, c.data, c.opts)
	encoded[c.name] = b
	return b
}

func makeCorpora(t testing.TB) []corpus {
	return []corpus{
		{"empty", nil, nil},
		{"one byte", []byte{'x'}, nil},
		{"short text", []byte("hello hello hello world\n"), nil},
		{"random", random(1, 1<<20+17), nil},
		{"zeros", make([]byte, 5<<20+3), nil},
		{"repeated", bytes.Repeat([]byte("abcdefghij0123456789"), 300000), nil},
		{"text over 2 MiB chunks", words(3, 5<<19), nil},
		{"random then text", append(random(4, 200<<10), words(5, 3<<20)...), nil},
		{"small dictionary", append(append(words(6, 300<<10), random(8, 100<<10)...), words(6, 300<<10)...), &Options{DictSize: 64 << 10}},
		{"payload", payload(t), nil},
	}
}

// TestRoundTripGo encodes each corpus and decodes it with
// therootcompany/xz (how strata reads parts) and ulikunitz/xz.
func TestRoundTripGo(t *testing.T) {
	for _, c := range corpora(t) {
		t.Run(c.name, func(t *testing.T) {
			xzb := encodeCorpus(t, c)
			decodeGo(t, xzb, c.data)
			t.Logf("%d bytes -> %d", len(c.data), len(xzb))
		})
	}
}

// TestIncompressible checks that data LZMA cannot shrink is stored: the
// stream is its size plus framing, not more.
func TestIncompressible(t *testing.T) {
	src := random(9, 1<<20)
	xzb := encode(t, src, nil)
	// 3 bytes a 64 KiB stored chunk, 12 header, 12 block header, 8 check,
	// 12 footer, 12 index at most.
	if limit := len(src) + 3*16 + 60; len(xzb) > limit {
		t.Fatalf("1 MiB of random bytes became %d bytes, more than %d", len(xzb), limit)
	}
	decodeGo(t, xzb, src)
}

// TestSmallerThanGreedy checks that the optimal parser beats ulikunitz/xz's
// greedy encoder, the one strata used before, on each compressible corpus.
func TestSmallerThanGreedy(t *testing.T) {
	for _, c := range corpora(t) {
		if len(c.data) < 1<<20 || c.name == "random" || c.opts != nil {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			var b bytes.Buffer
			w, err := ulxz.WriterConfig{DictCap: 8 << 20}.NewWriter(&b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := w.Write(c.data); err != nil {
				t.Fatal(err)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			ours := len(encodeCorpus(t, c))
			t.Logf("xzenc %d bytes, ulikunitz/xz %d bytes (%.3f)", ours, b.Len(), float64(ours)/float64(b.Len()))
			if ours >= b.Len() {
				t.Fatalf("xzenc made %d bytes, ulikunitz/xz %d", ours, b.Len())
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	src := payload(t)
	a := encode(t, src, nil)
	b := encode(t, src, nil)
	if !bytes.Equal(a, b) {
		t.Fatal("two encodings of the same input differ")
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []Options{{DictSize: 100}, {NiceLen: 4}, {NiceLen: 300}, {Depth: -1}} {
		if err := Encode(io.Discard, []byte("x"), &o); err == nil {
			t.Errorf("%+v: no error", o)
		}
	}
	src := words(10, 1<<20)
	for _, o := range []Options{{NiceLen: 8}, {NiceLen: 273}, {Depth: 1}, {DictSize: 4096}} {
		decodeGo(t, encode(t, src, &o), src)
	}
}

func TestDictByte(t *testing.T) {
	for _, c := range []struct{ size, b int }{{0, 0}, {4096, 0}, {4097, 1}, {6144, 1}, {8 << 20, 22}, {8<<20 + 1, 23}, {3 << 29, 37}} {
		if got := dictByte(c.size); int(got) != c.b {
			t.Errorf("dictByte(%d) = %d, want %d", c.size, got, c.b)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte("a"))
	f.Add([]byte("abababababababababab"))
	f.Add(words(11, 5000))
	f.Add(random(12, 3000))
	f.Add(append(words(13, 2000), words(13, 2000)...))
	f.Fuzz(func(t *testing.T, src []byte) {
		decodeGo(t, encode(t, src, &Options{DictSize: 4096, NiceLen: 16}), src)
		decodeGo(t, encode(t, src, nil), src)
	})
}

// BenchmarkEncode reports the speed on the payload corpus and, for
// comparison, ulikunitz/xz's greedy encoder on the same bytes.
func BenchmarkEncode(b *testing.B) {
	src := payload(b)
	b.Run("xzenc", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			if err := Encode(io.Discard, src, nil); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ulikunitz", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for b.Loop() {
			w, err := ulxz.WriterConfig{DictCap: 8 << 20}.NewWriter(io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := w.Write(src); err != nil {
				b.Fatal(err)
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkEncodeFiles compresses the files named in XZENC_BENCH_FILES
// (space-separated, e.g. decoded static-delta payloads) with xzenc and
// with ulikunitz/xz, reporting the total compressed size of each.
func BenchmarkEncodeFiles(b *testing.B) {
	names := strings.Fields(os.Getenv("XZENC_BENCH_FILES"))
	if len(names) == 0 {
		b.Skip("XZENC_BENCH_FILES names no file")
	}
	var files [][]byte
	total := 0
	for _, n := range names {
		f, err := os.ReadFile(n)
		if err != nil {
			b.Fatal(err)
		}
		files = append(files, f)
		total += len(f)
	}
	run := func(b *testing.B, enc func(io.Writer, []byte) error) {
		b.SetBytes(int64(total))
		for b.Loop() {
			var c countingWriter
			for _, f := range files {
				if err := enc(&c, f); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(c), "out-bytes")
		}
	}
	b.Run("xzenc", func(b *testing.B) {
		run(b, func(w io.Writer, src []byte) error { return Encode(w, src, nil) })
	})
	b.Run("ulikunitz", func(b *testing.B) {
		run(b, func(w io.Writer, src []byte) error {
			zw, err := ulxz.WriterConfig{DictCap: 8 << 20}.NewWriter(w)
			if err != nil {
				return err
			}
			if _, err := zw.Write(src); err != nil {
				return err
			}
			return zw.Close()
		})
	})
}

type countingWriter int

func (c *countingWriter) Write(b []byte) (int, error) {
	*c += countingWriter(len(b))
	return len(b), nil
}

// chunks walks the LZMA2 data of a one-block stream and returns its
// chunks' control bytes, checking each chunk's sizes against the format's
// limits and the reset rules.
func chunks(t *testing.T, xzb []byte) []byte {
	t.Helper()
	hdr := 12 + (int(xzb[12])+1)*4 // stream header, block header
	p := hdr
	var ctls []byte
	unpacked := 0
	for {
		ctl := xzb[p]
		switch {
		case ctl == 0:
			return append(ctls, ctl)
		case ctl == 1 || ctl == 2:
			n := int(xzb[p+1])<<8 | int(xzb[p+2]) + 1
			if n > maxStoredChunk {
				t.Fatalf("stored chunk of %d bytes", n)
			}
			unpacked += n
			p += 3 + n
		case ctl >= 0x80:
			u := int(ctl&0x1F)<<16 | int(xzb[p+1])<<8 | int(xzb[p+2]) + 1
			c := int(xzb[p+3])<<8 | int(xzb[p+4]) + 1
			if u > maxChunkUnpacked || c > maxChunkPacked {
				t.Fatalf("LZMA chunk of %d bytes, %d compressed", u, c)
			}
			if c >= u {
				t.Errorf("LZMA chunk of %d bytes not stored though it compressed to %d", u, c)
			}
			p += 5
			if ctl >= 0xC0 {
				if xzb[p] != propsByte {
					t.Fatalf("properties %#x, want %#x", xzb[p], propsByte)
				}
				p++
			}
			p += c
			unpacked += u
		default:
			t.Fatalf("control byte %#x", ctl)
		}
		if len(ctls) == 0 && ctl != 0x01 && ctl < 0xE0 {
			t.Fatalf("first chunk %#x does not reset the dictionary", ctl)
		}
		if len(ctls) > 0 && ctl >= 0x80 && ctls[len(ctls)-1] < 0x80 && ctl < 0xA0 {
			t.Fatalf("LZMA chunk %#x after a stored chunk does not reset the state", ctl)
		}
		if len(ctls) > 0 && (ctl == 0x01 || ctl >= 0xE0) {
			t.Fatalf("chunk %d resets the dictionary (%#x)", len(ctls), ctl)
		}
		ctls = append(ctls, ctl)
	}
}

// TestChunks checks the LZMA2 chunking: text over several chunks, and
// random bytes between texts, stored as 64 KiB chunks with the LZMA chunk
// after them resetting the state.
func TestChunks(t *testing.T) {
	text := words(14, 5<<19)
	ctls := chunks(t, encode(t, text, nil))
	if ctls[0]&0xE0 != 0xE0 || len(ctls) < 4 {
		t.Fatalf("text: control bytes % x", ctls)
	}
	mixed := append(append(words(15, 100<<10), random(16, 300<<10)...), words(17, 100<<10)...)
	xzb := encode(t, mixed, nil)
	ctls = chunks(t, xzb)
	stored, reset := 0, 0
	for i, c := range ctls {
		if c == 0x02 {
			stored++
		}
		if c&0xE0 == 0xA0 && i > 0 && ctls[i-1] == 0x02 {
			reset++
		}
	}
	if stored < 4 || reset != 1 {
		t.Fatalf("mixed: control bytes % x: want at least 4 stored chunks and one state reset after them", ctls)
	}
	decodeGo(t, xzb, mixed)
	ctls = chunks(t, encode(t, random(18, 200<<10), nil))
	if ctls[0] != 0x01 {
		t.Fatalf("random: control bytes % x, want a stored first chunk", ctls)
	}
}
