//go:build peer

package oci

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// singleLayerArchive writes to path an oci-archive of tree as one uncompressed tar layer
// (GNU tar, numeric owners, sorted names): the image the push goal was first measured with
// (a 620 MB single-layer image), which skopeo compresses on its way to a registry as
// strata does. It returns the layer's size.
func singleLayerArchive(b *testing.B, tree, path string) int64 {
	b.Helper()
	lay := filepath.Join(b.TempDir(), "layout")
	blobs := filepath.Join(lay, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		b.Fatal(err)
	}
	layer := filepath.Join(lay, "layer.tar")
	runCmd(b, "tar", "--numeric-owner", "--sort=name", "-C", tree, "-cf", layer, ".")
	lf, err := os.Open(layer)
	if err != nil {
		b.Fatal(err)
	}
	ld, lsize, err := v1.SHA256(lf)
	lf.Close()
	if err != nil {
		b.Fatal(err)
	}
	if err := os.Rename(layer, filepath.Join(blobs, ld.Hex)); err != nil {
		b.Fatal(err)
	}
	blob := func(v any) v1.Descriptor {
		data, err := json.Marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		d, _, err := v1.SHA256(bytes.NewReader(data))
		if err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(blobs, d.Hex), data, 0o644); err != nil {
			b.Fatal(err)
		}
		return v1.Descriptor{Digest: d, Size: int64(len(data))}
	}
	cfg := blob(v1.ConfigFile{Architecture: runtime.GOARCH, OS: "linux",
		RootFS: v1.RootFS{Type: "layers", DiffIDs: []v1.Hash{ld}}})
	cfg.MediaType = types.OCIConfigJSON
	man := blob(v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, Config: cfg,
		Layers: []v1.Descriptor{{MediaType: types.OCIUncompressedLayer, Digest: ld, Size: lsize}}})
	man.MediaType = types.OCIManifestSchema1
	idx, err := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{man}})
	if err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lay, "index.json"), idx, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lay, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		b.Fatal(err)
	}
	runCmd(b, "tar", "-C", lay, "-cf", path, ".")
	if err := exec.Command("rm", "-rf", lay).Run(); err != nil {
		b.Fatal(err)
	}
	return lsize
}
