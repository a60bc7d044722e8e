package oci

import (
	"context"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

// cachedBlobs lists the blob cache of r.
func cachedBlobs(t *testing.T, r *repo.Repo) []string {
	t.Helper()
	des, err := os.ReadDir(filepath.Join(r.Path(), blobCacheDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names
}

// TestPushSendsCachedLayers: a push keeps the layers it built; a push of the same commit to
// another destination sends them from the cache without building them (only the commit's
// layer is made again), and the image is the same.
func TestPushSendsCachedLayers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	v1 := commitTree(t, src, osTree(t, "1.0"), "1.0")
	first, err := Push(ctx, src, "os", "oci-archive:"+filepath.Join(t.TempDir(), "os.tar"), PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.LayersFromCache != 0 {
		t.Errorf("first Push sent %d layers from the cache, want 0", first.LayersFromCache)
	}
	if n := len(cachedBlobs(t, src)); n != first.Layers-1 {
		t.Errorf("blob cache holds %d blobs after the first push, want %d (every layer but the commit's)", n, first.Layers-1)
	}
	reg := httptest.NewServer(newTestRegistry())
	defer reg.Close()
	ref := "docker://" + strings.TrimPrefix(reg.URL, "http://") + "/strata/os:1.0"
	ro := RegistryOptions{Insecure: true}
	res, err := Push(ctx, src, "os", ref, PushOptions{RegistryOptions: ro})
	if err != nil {
		t.Fatal(err)
	}
	if res.LayersFromCache != first.Layers-1 || res.LayersReused != 0 || res.ManifestDigest != first.ManifestDigest {
		t.Errorf("second Push = %+v; want %d layers from the cache, none reused, digest %s", res, first.Layers-1, first.ManifestDigest)
	}
	dst := newRepo(t, repo.ModeBareUser)
	if got, err := Pull(ctx, dst, ref, PullOptions{RegistryOptions: ro}); err != nil || got.Commit != v1 {
		t.Fatalf("Pull of the cached push = %v, %v; want %s", got, err, v1)
	}
	fsckClean(t, dst)
}

// TestPushRefusesDamagedCachedLayer: a cached blob whose bytes no longer match its digest
// fails the push that reads it with a corruption error and leaves the cache; the next push
// builds the layer again and makes the same image.
func TestPushRefusesDamagedCachedLayer(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	first, err := Push(ctx, src, "os", "oci:"+filepath.Join(t.TempDir(), "a"), PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	blobs := cachedBlobs(t, src)
	if len(blobs) == 0 {
		t.Fatal("no cached blobs")
	}
	victim := filepath.Join(src.Path(), blobCacheDir, blobs[0])
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff // same size, other bytes
	if err := os.WriteFile(victim, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Push(ctx, src, "os", "oci:"+filepath.Join(t.TempDir(), "b"), PushOptions{})
	if !errors.Is(err, errdefs.ErrCorrupt) {
		t.Fatalf("Push from a damaged cache = %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(victim); !os.IsNotExist(err) {
		t.Errorf("damaged blob still cached (%v)", err)
	}
	again, err := Push(ctx, src, "os", "oci:"+filepath.Join(t.TempDir(), "c"), PushOptions{})
	if err != nil || again.ManifestDigest != first.ManifestDigest || again.LayersFromCache != first.Layers-2 {
		t.Fatalf("Push after the damaged blob left = %+v, %v; want digest %s, %d layers from the cache", again, err, first.ManifestDigest, first.Layers-2)
	}
}

// TestPushBlobCacheOff: [oci] blob-cache-mib=0 keeps no blobs.
func TestPushBlobCacheOff(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	src.Config().Set("oci", "blob-cache-mib", "0")
	for _, d := range []string{"a", "b"} {
		res, err := Push(ctx, src, "os", "oci:"+filepath.Join(t.TempDir(), d), PushOptions{})
		if err != nil || res.LayersFromCache != 0 {
			t.Fatalf("Push to %s = %+v, %v; want no layer from the cache", d, res, err)
		}
	}
	if n := cachedBlobs(t, src); len(n) != 0 {
		t.Errorf("blob cache holds %v, want nothing", n)
	}
}

// TestBlobCachePrune: past the bound the least recently used blobs go, except those used
// within the grace period; stale temporary files go too.
func TestBlobCachePrune(t *testing.T) {
	dir := t.TempDir()
	c := &blobCache{dir: dir, limit: 3 << 20}
	old := time.Now().Add(-2 * blobCacheGrace)
	put := func(name string, size int, at time.Time) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 4 { // b0 oldest … b3 newest, 1 MiB each, all past the grace period
		put(fmt.Sprintf("%064x", i), 1<<20, old.Add(time.Duration(i)*time.Minute))
	}
	put(fmt.Sprintf("%064x", 9), 1<<20, time.Now()) // just used: kept although over the bound
	put(".tmp-stale", 10, old)
	put(".tmp-live", 10, time.Now())
	c.prune()
	var names []string
	des, _ := os.ReadDir(dir)
	for _, de := range des {
		names = append(names, de.Name())
	}
	want := []string{".tmp-live", fmt.Sprintf("%064x", 2), fmt.Sprintf("%064x", 3), fmt.Sprintf("%064x", 9)}
	if !slices.Equal(names, want) {
		t.Fatalf("after pruning to 3 MiB: %v, want %v", names, want)
	}
}
