package oci

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// blobCacheDir, in the repository, keeps the compressed layers push built, each named by
// the hex of its digest. With the layer cache (layercache.go), which names a layer's digest
// from the commit's metadata, it lets a push send a layer built before without building it
// again: the same release pushed to a second registry or written to an archive, or a push
// retried after a network failure, reads the layers back instead of compressing 600 MB.
const blobCacheDir = "tmp/cache/oci-blobs"

// DefaultBlobCacheMiB bounds the blob cache when the repository's config has no
// [oci] blob-cache-mib: 2 GiB, about eight full images of a Debian-sized OS (most layers
// of successive releases are the same blobs). 0 keeps no blobs.
const DefaultBlobCacheMiB = 2048

// blobCacheGrace is how long a blob stays after it was last used even past the bound, so
// that pruning never removes the blob a concurrent push is about to send.
const blobCacheGrace = time.Hour

// blobCache is the repository's blob cache, or nil when it keeps none (bound 0, or a
// repository this process cannot write).
type blobCache struct {
	dir   string
	limit int64
}

func openBlobCache(r *repo.Repo) *blobCache {
	mib, err := r.Config().GetInt("oci", "blob-cache-mib", DefaultBlobCacheMiB)
	if err != nil || mib <= 0 {
		return nil
	}
	dir := filepath.Join(r.Path(), blobCacheDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil
	}
	return &blobCache{dir: dir, limit: int64(mib) << 20}
}

// tempPath returns a new file name in the cache for a layer being written, or "" when the
// cache cannot take one.
func (c *blobCache) tempPath() string {
	if c == nil {
		return ""
	}
	f, err := os.CreateTemp(c.dir, ".tmp-")
	if err != nil {
		return ""
	}
	f.Close()
	return f.Name()
}

// keep names the layer written at l.path (a tempPath) by its digest. A layer the cache
// cannot name stays where it is, which is still a good file for this push; prune removes
// it later.
func (c *blobCache) keep(l *fileLayer) {
	p := filepath.Join(c.dir, l.digest.Hex)
	if err := os.Rename(l.path, p); err == nil {
		l.path = p
	}
}

// open returns the cached blob of the layer k names, or nil. Its bytes are checked against
// the digest as they are read (a damaged file fails the push that reads it, and is removed).
func (c *blobCache) open(k *knownLayer) *fileLayer {
	if c == nil || k.digest.Algorithm != "sha256" || !ostree.IsChecksum(k.digest.Hex) {
		return nil
	}
	p := filepath.Join(c.dir, k.digest.Hex)
	fi, err := os.Lstat(p)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != k.size {
		return nil
	}
	now := time.Now()
	_ = os.Chtimes(p, now, now)
	return &fileLayer{path: p, digest: k.digest, diffID: k.diffID, size: k.size, verify: true}
}

// prune removes the least recently used blobs beyond the bound, except those used within
// blobCacheGrace, and leftover temporary files older than that. Best effort, as the cache.
func (c *blobCache) prune() {
	if c == nil {
		return
	}
	des, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type blob struct {
		name string
		t    time.Time
		size int64
	}
	var blobs []blob
	cutoff := time.Now().Add(-blobCacheGrace)
	for _, de := range des {
		fi, err := de.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		switch {
		case ostree.IsChecksum(de.Name()): // a SHA-256 in hex, as a blob's name
			blobs = append(blobs, blob{de.Name(), fi.ModTime(), fi.Size()})
		case strings.HasPrefix(de.Name(), ".tmp-") && fi.ModTime().Before(cutoff):
			os.Remove(filepath.Join(c.dir, de.Name()))
		}
	}
	sort.Slice(blobs, func(i, j int) bool {
		if !blobs[i].t.Equal(blobs[j].t) {
			return blobs[i].t.After(blobs[j].t)
		}
		return blobs[i].name < blobs[j].name
	})
	var total int64
	for _, b := range blobs {
		total += b.size
		if total > c.limit && b.t.Before(cutoff) {
			os.Remove(filepath.Join(c.dir, b.name))
		}
	}
}

// verifyingReader reads a cached blob and fails at its end unless the bytes hash to the
// digest they are cached under; a failed file is removed from the cache.
type verifyingReader struct {
	f    *os.File
	h    hash.Hash
	want string
	n    int64
	size int64
}

func newVerifyingReader(f *os.File, wantHex string, size int64) *verifyingReader {
	return &verifyingReader{f: f, h: sha256.New(), want: wantHex, size: size}
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want || v.n != v.size {
			os.Remove(v.f.Name())
			return n, fmt.Errorf("cached layer %s: %d bytes hashing to sha256:%s (removed from the cache; push again): %w",
				v.f.Name(), v.n, got, errdefs.ErrCorrupt)
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }
