package delta

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// partOps returns the operations of a delta's part i, read from the
// repository and checked against its header.
func partOps(t *testing.T, r *repo.Repo, sb *Superblock, i int) []byte {
	t.Helper()
	return partPayload(t, r, sb, i).ops
}

// partPayload returns the payload of a delta's part i, read from the
// repository and checked against its header; it stays readable until the
// test ends.
func partPayload(t *testing.T, r *repo.Repo, sb *Superblock, i int) *payload {
	t.Helper()
	f, err := os.Open(filepath.Join(r.Path(), sb.Name.PartPath(i)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sp, err := spoolPart(context.Background(), f, sb.Parts[i], t.TempDir(), MaxPartSize)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sp.f.Close() })
	pl, err := splitPayload(sp.f, sp.size)
	if err != nil {
		t.Fatal(err)
	}
	return pl
}

// TestGeneratePatches: a file whose blocks moved, and a kernel and modules
// whose paths changed with the kernel's version (two of them with names
// that differ only in digits), travel as bsdiff patches (found by the
// suffix search, and by the path with the version ignored), so that the delta is a small
// fraction of the two files; it applies and the repository checks clean.
func TestGeneratePatches(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	kernel, lib := random(512<<10), random(256<<10)
	// Two modules whose names differ only in digits.
	modA, modB := random(64<<10), random(64<<10)
	edit := func(b []byte) string {
		b = bytes.Clone(b)
		for i := 0; i < len(b); i += 4096 {
			b[i]++
		}
		return string(b)
	}
	tmp := t.TempDir()
	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	writeTree(t, filepath.Join(tmp, "t1"), map[string]string{
		"usr/lib/modules/6.1.0-17-amd64/vmlinuz": string(kernel), "usr/lib/libx.so": string(lib),
		"usr/lib/modules/6.1.0-17-amd64/mt76x0e.ko": string(modA), "usr/lib/modules/6.1.0-17-amd64/mt76x2e.ko": string(modB)})
	c1 := commitDir(t, src, filepath.Join(tmp, "t1"))
	newKernel := bytes.Clone(kernel)
	for i := 0; i < len(newKernel); i += 4096 {
		newKernel[i] ^= 0x5a
	}
	newLib := slices.Concat(lib[100<<10:], []byte("a new function"), lib[:100<<10])
	writeTree(t, filepath.Join(tmp, "t2"), map[string]string{
		"usr/lib/modules/6.1.0-18-amd64/vmlinuz": string(newKernel), "usr/lib/libx.so": string(newLib),
		"usr/lib/modules/6.1.0-18-amd64/mt76x0e.ko": edit(modA), "usr/lib/modules/6.1.0-18-amd64/mt76x2e.ko": edit(modB)})
	c2 := commitDir(t, src, filepath.Join(tmp, "t2"))

	sb, err := Generate(context.Background(), src, c1, c2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var patches, size int
	for i, h := range sb.Parts {
		patches += bytes.Count(partOps(t, src, sb, i), []byte{opBspatch})
		size += int(h.Size)
	}
	if patches != 4 {
		t.Errorf("delta has %d bspatch operations, want 4 (the kernel, the library and two modules)", patches)
	}
	if files := len(kernel) + len(lib) + len(modA) + len(modB); size > files/10 {
		t.Errorf("delta parts are %d bytes, want at most a tenth of the %d bytes of the files", size, files)
	}
	// Patches are computed and parts compressed in parallel: with parts
	// closed at 128 KiB, two generations write the same part files.
	partFiles := func() [][]byte {
		sb, err := Generate(context.Background(), src, c1, c2, Options{MaxChunkSize: 128 << 10})
		if err != nil {
			t.Fatal(err)
		}
		var files [][]byte
		for i := range sb.Parts {
			f, err := os.ReadFile(filepath.Join(src.Path(), sb.Name.PartPath(i)))
			if err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
		return files
	}
	if a, b := partFiles(), partFiles(); len(a) < 3 || !slices.EqualFunc(a, b, bytes.Equal) {
		t.Errorf("two generations with small parts wrote %d and %d different part files, want the same (at least 3)", len(a), len(b))
	}
	if sb, err = Generate(context.Background(), src, c1, c2, Options{}); err != nil {
		t.Fatal(err)
	}
	dst, err := repo.Init(filepath.Join(tmp, "dst"), repo.ModeBareUserOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, n := range []Name{{To: c1}, sb.Name} {
		if n.Scratch() {
			if _, err := Generate(context.Background(), src, ostree.Checksum{}, c1, Options{}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ApplyOffline(context.Background(), dst, filepath.Join(src.Path(), n.Dir())); err != nil {
			t.Fatalf("ApplyOffline(%s) = %v", n, err)
		}
	}
	if err := dst.SetRef("", "os", c2); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, dst)
	t.Logf("delta of %d bytes for %d bytes of changed files", size, len(kernel)+len(lib)+len(modA)+len(modB))
}

// TestSharedProbe: a large file that is mostly its old version edited in
// place or moved is searched for a patch; one that shares nothing with
// its old version (as a recompressed kernel image) is not.
func TestSharedProbe(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(9, 9))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	old := random(2 << 20)
	edited := bytes.Clone(old)
	for i := 0; i < len(edited); i += 4096 {
		edited[i]++
	}
	moved := slices.Concat(old[1<<20:], random(1000), old[:1<<20])
	for _, tc := range []struct {
		name string
		new  []byte
		want bool
	}{
		{"edited in place", edited, true},
		{"halves swapped", moved, true},
		{"unrelated", random(2 << 20), false},
		{"small unrelated", random(probeMin - 1), true},
	} {
		if got := shared(old, tc.new); got != tc.want {
			t.Errorf("shared(old, %s) = %v, want %v", tc.name, got, tc.want)
		}
	}
}
