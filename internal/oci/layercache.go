package oci

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/strata-os/strata/internal/errdefs"
)

// layerCacheDir, in the repository, remembers the digest, diff ID and size of each layer
// push built, under the layer's key (layerKey). A push to a registry that has the blob
// of a remembered layer does not build that layer again: an update that changes one
// package compresses that package's layer, not every layer.
const layerCacheDir = "tmp/cache/oci-layers"

// layerCacheMax bounds the layer cache: an entry is about 200 bytes, and a push of an OS
// makes at most DefaultMaxLayers of them, so this keeps the layers of the last 64 or so
// releases (under 1 MB). A push that used an entry refreshes its time; pruneLayerCache
// removes the least recently used beyond the bound. Losing an entry costs a later push
// the building of that layer, nothing else.
const layerCacheMax = 64 * DefaultMaxLayers

// layerFormat names what the bytes of a layer depend on besides its entries: the tar
// writer (Go's), the compressor and its level. A new version of either gives other
// digests, so it gives other keys.
var layerFormat = sync.OnceValue(func() string {
	f := fmt.Sprintf("strata oci layer 1; %s; gzip level %d", runtime.Version(), layerCompression)
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, m := range bi.Deps {
			if m.Path == "github.com/klauspost/compress" {
				f += "; " + m.Path + " " + m.Version
			}
		}
	}
	return f
})

// layerKey identifies the layer of ch without building it: the tar header of every entry,
// the content object of every regular file, and layerFormat.
func layerKey(ctx context.Context, entries []entry, ch *chunk, allDirs bool) (string, error) {
	h := sha256.New()
	fmt.Fprintln(h, layerFormat())
	err := chunkHeaders(ctx, entries, ch, allDirs, func(th *tar.Header, e *entry) error {
		fmt.Fprintf(h, "%q %c %o %d %d %q %d", th.Name, th.Typeflag, th.Mode, th.Uid, th.Gid, th.Linkname, th.Size)
		keys := make([]string, 0, len(th.PAXRecords))
		for k := range th.PAXRecords {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(h, " %q=%q", k, th.PAXRecords[k])
		}
		if th.Typeflag == tar.TypeReg {
			fmt.Fprintf(h, " %s", e.sum)
		}
		_, err := io.WriteString(h, "\n")
		return err
	})
	return hex.EncodeToString(h.Sum(nil)), err
}

type cachedLayer struct {
	Digest string `json:"digest"`
	DiffID string `json:"diff_id"`
	Size   int64  `json:"size"`
}

// readCachedLayer returns the layer remembered under key, or nil.
func readCachedLayer(repoPath, key string) *knownLayer {
	path := filepath.Join(repoPath, layerCacheDir, key)
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	var c cachedLayer
	if err := json.NewDecoder(io.LimitReader(f, 4096)).Decode(&c); err != nil {
		return nil
	}
	d, err1 := v1.NewHash(c.Digest)
	id, err2 := v1.NewHash(c.DiffID)
	if err1 != nil || err2 != nil || c.Size <= 0 {
		return nil
	}
	return &knownLayer{digest: d, diffID: id, size: c.Size}
}

// touchCachedLayer marks the entry under key as just used, for pruneLayerCache.
func touchCachedLayer(repoPath, key string) {
	now := time.Now()
	_ = os.Chtimes(filepath.Join(repoPath, layerCacheDir, key), now, now)
}

// pruneLayerCache removes the least recently used entries beyond keep. Like the cache
// itself it is best effort: an entry it cannot list or remove stays.
func pruneLayerCache(repoPath string, keep int) {
	dir := filepath.Join(repoPath, layerCacheDir)
	des, err := os.ReadDir(dir)
	if err != nil || len(des) <= keep {
		return
	}
	type aged struct {
		name string
		t    time.Time
	}
	all := make([]aged, 0, len(des))
	for _, de := range des {
		if fi, err := de.Info(); err == nil && fi.Mode().IsRegular() {
			all = append(all, aged{de.Name(), fi.ModTime()})
		}
	}
	sort.Slice(all, func(i, j int) bool {
		if !all[i].t.Equal(all[j].t) {
			return all[i].t.After(all[j].t)
		}
		return all[i].name < all[j].name
	})
	for _, a := range all[min(keep, len(all)):] {
		os.Remove(filepath.Join(dir, a.name))
	}
}

// writeCachedLayer remembers l under key. It is a hint for later pushes: a repository
// this push cannot write to just does not get it.
func writeCachedLayer(repoPath, key string, l *fileLayer) {
	dir := filepath.Join(repoPath, layerCacheDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return
	}
	b, err := json.Marshal(cachedLayer{Digest: l.digest.String(), DiffID: l.diffID.String(), Size: l.size})
	if err != nil {
		return
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, key))
	}
	if err != nil {
		os.Remove(f.Name())
	}
}

// knownLayer is a layer the registry being pushed to has: its digest, diff ID and size
// are known, its bytes are not here.
type knownLayer struct {
	digest, diffID v1.Hash
	size           int64
}

var _ v1.Layer = (*knownLayer)(nil)

func (l *knownLayer) Digest() (v1.Hash, error)            { return l.digest, nil }
func (l *knownLayer) DiffID() (v1.Hash, error)            { return l.diffID, nil }
func (l *knownLayer) Size() (int64, error)                { return l.size, nil }
func (l *knownLayer) MediaType() (types.MediaType, error) { return types.OCILayer, nil }
func (l *knownLayer) Compressed() (io.ReadCloser, error) {
	return nil, fmt.Errorf("layer %s: in the registry, not built here: %w", l.digest, errdefs.ErrNotFound)
}
func (l *knownLayer) Uncompressed() (io.ReadCloser, error) { return l.Compressed() }
