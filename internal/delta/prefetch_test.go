package delta

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// TestPrefetchAsksForSources: the prefetcher follows a part's program and asks, in the
// program's order, for the read source of each patch: the old versions of the changed
// files, which are all the content objects of the old commit here. It stops after
// sourceWindow of them until the program reads some.
func TestPrefetchAsksForSources(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 8))
	tmp := t.TempDir()
	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	const files = sourceWindow + 6
	old, changed := map[string]string{}, map[string]string{}
	for i := range files {
		b := make([]byte, 8<<10)
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		name := "usr/lib/f" + string(rune('a'+i/26)) + string(rune('a'+i%26))
		old[name] = string(b)
		b[100]++
		changed[name] = string(b)
	}
	writeTree(t, filepath.Join(tmp, "t1"), old)
	c1 := commitDir(t, src, filepath.Join(tmp, "t1"))
	want := map[ostree.Checksum]bool{}
	if err := src.ListObjects(func(n ostree.ObjectName) error {
		if n.Type == ostree.ObjectFile {
			want[n.Checksum] = true
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	writeTree(t, filepath.Join(tmp, "t2"), changed)
	c2 := commitDir(t, src, filepath.Join(tmp, "t2"))
	sb, err := Generate(context.Background(), src, c1, c2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Parts) != 1 {
		t.Fatalf("%d parts, want 1", len(sb.Parts))
	}
	pl := partPayload(t, src, sb, 0)
	if n := bytes.Count(pl.ops, []byte{opBspatch}); n < files {
		t.Fatalf("%d bspatch operations, want %d", n, files)
	}

	asked := make(chan string, files)
	pf := newPrefetcher(func(path string) { asked <- path })
	go func() {
		defer close(pf.ended)
		pf.run(src, pl, sb.Parts[0].Objects)
	}()
	var got []string
	for range sourceWindow {
		got = append(got, <-asked)
	}
	select {
	case p := <-asked:
		t.Fatalf("asked for %s beyond the window of %d before the program read any", p, sourceWindow)
	default:
	}
	for range files - sourceWindow {
		pf.consumed()
		got = append(got, <-asked)
	}
	pf.stop()
	var paths []string
	for c := range want {
		paths = append(paths, src.ObjectPath(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}))
	}
	slices.Sort(paths)
	sorted := slices.Sorted(slices.Values(got))
	if !slices.Equal(sorted, paths) {
		t.Fatalf("asked for %d paths:\n%v\nwant the %d old objects:\n%v", len(got), sorted, len(paths), paths)
	}
}
