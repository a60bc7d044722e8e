package oci

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// The layer cache keeps the most recently used entries: a hit refreshes an entry, and
// pruning removes the least recently used beyond the bound.
func TestLayerCachePrune(t *testing.T) {
	repoPath := t.TempDir()
	l := &fileLayer{size: 1,
		digest: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", 1)},
		diffID: v1.Hash{Algorithm: "sha256", Hex: fmt.Sprintf("%064x", 2)}}
	dir := filepath.Join(repoPath, layerCacheDir)
	old := time.Now().Add(-time.Hour)
	for i := range 6 {
		key := fmt.Sprintf("k%d", i)
		writeCachedLayer(repoPath, key, l)
		// k0 is the oldest, k5 the newest.
		ti := old.Add(time.Duration(i) * time.Minute)
		if err := os.Chtimes(filepath.Join(dir, key), ti, ti); err != nil {
			t.Fatal(err)
		}
	}
	if readCachedLayer(repoPath, "k1") == nil {
		t.Fatal("k1 not readable")
	}
	touchCachedLayer(repoPath, "k1") // used by this push: now the newest
	pruneLayerCache(repoPath, 3)
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	if want := []string{"k1", "k4", "k5"}; !slices.Equal(names, want) {
		t.Fatalf("after pruning to 3: %v, want %v", names, want)
	}
	if k := readCachedLayer(repoPath, "k5"); k == nil || k.digest != l.digest || k.diffID != l.diffID {
		t.Fatalf("k5 = %+v", k)
	}
	pruneLayerCache(repoPath, 3) // at the bound: nothing to do
	if des, _ := os.ReadDir(dir); len(des) != 3 {
		t.Fatalf("%d entries left, want 3", len(des))
	}
}
