package oci

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// layerRefs returns the layer refs of r by diff ID.
func layerRefs(t testing.TB, r *repo.Repo) map[string]ostree.Checksum {
	t.Helper()
	refs, err := r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]ostree.Checksum{}
	for _, ref := range refs {
		if d, ok := strings.CutPrefix(ref.Name, LayerRefPrefix); ok && ref.Remote == "" {
			out[d] = ref.Checksum
		}
	}
	return out
}

// TestPullRecordsLayersOfLocalCommit: a repository that has an image's commit already
// (committed here, as a pull of objects or a push from here leaves it) pulls the image
// without downloading a layer, and still gets the layer refs a download would have
// written, the same commits; the next image then downloads only its changed layers.
func TestPullRecordsLayersOfLocalCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up := newRepo(t, repo.ModeArchive)
	v1 := commitTree(t, up, osTree(t, "1.0"), "1.0")
	img1 := toLayout(t, encapsulated(t, up))

	downloaded := newRepo(t, repo.ModeArchive)
	if _, err := Pull(ctx, downloaded, img1, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUser} {
		node := newRepo(t, mode)
		if c := commitTree(t, node, osTree(t, "1.0"), "1.0"); c != v1 {
			t.Fatalf("the same tree committed again = %s, want %s", c, v1)
		}
		res, err := Pull(ctx, node, img1, PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Commit != v1 || res.LayersFetched != 0 || res.LayersRecorded != 4 {
			t.Errorf("%s: Pull of the local commit = %s, %d layers fetched, %d recorded; want %s, 0, 4 (every layer but the commit's)",
				mode, res.Commit, res.LayersFetched, res.LayersRecorded, v1)
		}
		if diff := cmp.Diff(layerRefs(t, downloaded), layerRefs(t, node)); diff != "" {
			t.Errorf("%s: layer refs recorded from the local commit differ from those of a download (-download +local):\n%s", mode, diff)
		}
		again, err := Pull(ctx, node, img1, PullOptions{})
		if err != nil || again.LayersRecorded != 0 {
			t.Errorf("%s: second Pull recorded %d layers (%v), want none: they have refs", mode, again.LayersRecorded, err)
		}
		fsckClean(t, node)
	}

	// 2.0 changes the package "tool" and os-release: three layers of five are new.
	node := newRepo(t, repo.ModeBareUser)
	commitTree(t, node, osTree(t, "1.0"), "1.0")
	if _, err := Pull(ctx, node, img1, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	v2 := commitTree(t, up, osTree(t, "2.0"), "2.0")
	res, err := Pull(ctx, node, toLayout(t, encapsulated(t, up)), PullOptions{Ref: "os"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != v2 || res.LayersFetched != 3 || res.LayersSkipped != 2 {
		t.Errorf("Pull of 2.0 = %s, %d layers fetched, %d kept; want %s, 3 (unpackaged, tool, commit), 2",
			res.Commit, res.LayersFetched, res.LayersSkipped, v2)
	}
	fsckClean(t, node)
}

// TestPullRecordsOnlyMatchingLayers: an image of the local commit chunked otherwise (push
// with another layer bound) gets refs only for the layers the commit reproduces, and the
// refs of those are the ones a download writes.
func TestPullRecordsOnlyMatchingLayers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up := newRepo(t, repo.ModeArchive)
	commitTree(t, up, osTree(t, "1.0"), "1.0")
	img, _, err := Encapsulate(ctx, up, "os", t.TempDir(), 3)
	if err != nil {
		t.Fatal(err)
	}
	ref := toLayout(t, img)
	downloaded := newRepo(t, repo.ModeArchive)
	if _, err := Pull(ctx, downloaded, ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	node := newRepo(t, repo.ModeArchive)
	commitTree(t, node, osTree(t, "1.0"), "1.0")
	res, err := Pull(ctx, node, ref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Three layers: unpackaged, the three packages grouped, the commit.
	if res.LayersRecorded != 2 {
		t.Errorf("Pull of a 3-layer image recorded %d layers, want 2", res.LayersRecorded)
	}
	if diff := cmp.Diff(layerRefs(t, downloaded), layerRefs(t, node)); diff != "" {
		t.Errorf("layer refs differ (-download +local):\n%s", diff)
	}
}

// TestPullRecordsNothingForeign: an image that claims the local commit but whose layer is
// something else gets no ref for that layer (the registry's word is not taken), and the
// others get theirs.
func TestPullRecordsNothingForeign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	up := newRepo(t, repo.ModeArchive)
	commitTree(t, up, osTree(t, "1.0"), "1.0")
	img := encapsulated(t, up)
	downloaded := newRepo(t, repo.ModeArchive)
	if _, err := Pull(ctx, downloaded, toLayout(t, img), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	forgedDiffID, err := layers[1].DiffID()
	if err != nil {
		t.Fatal(err)
	}
	layers[1] = tarLayer(t, dirEntry("usr/"), dirEntry("usr/share/"), dirEntry("usr/share/big/"), fileEntry("usr/share/big/data", "other"))
	cfg = cfg.DeepCopy()
	cfg.RootFS.DiffIDs = nil
	forged, err := mutate.ConfigFile(mutate.MediaType(empty.Image, types.OCIManifestSchema1), cfg)
	if err != nil {
		t.Fatal(err)
	}
	forged = derive(t, forged, layers...)
	node := newRepo(t, repo.ModeArchive)
	commitTree(t, node, osTree(t, "1.0"), "1.0")
	res, err := Pull(ctx, node, toLayout(t, forged), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.LayersRecorded != 3 {
		t.Errorf("Pull recorded %d layers, want 3 (not the forged one, not the commit's)", res.LayersRecorded)
	}
	want := layerRefs(t, downloaded)
	delete(want, forgedDiffID.Hex)
	if diff := cmp.Diff(want, layerRefs(t, node)); diff != "" {
		t.Errorf("layer refs (-want +got):\n%s", diff)
	}
}

// TestPushReusesLayersTheRegistryHas: after a push of 1.0, a push of 2.0 to the same
// registry repository builds only the layers that changed (the repository's layer cache
// names the others and the registry has them), and gives the image a push without the
// cache gives; to a repository without the blobs, every layer is sent, from the blob cache.
func TestPushReusesLayersTheRegistryHas(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := httptest.NewServer(newTestRegistry())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	ro := RegistryOptions{Insecure: true}
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	first, err := Push(ctx, src, "os", "docker://"+host+"/strata/os:1.0", PushOptions{RegistryOptions: ro})
	if err != nil {
		t.Fatal(err)
	}
	if first.LayersReused != 0 {
		t.Errorf("first Push reused %d layers, want 0", first.LayersReused)
	}
	v2 := commitTree(t, src, osTree(t, "2.0"), "2.0")
	res, err := Push(ctx, src, "os", "docker://"+host+"/strata/os:2.0", PushOptions{RegistryOptions: ro})
	if err != nil {
		t.Fatal(err)
	}
	// 2.0 changes "tool" and os-release: "big" and "app" are the layers of 1.0.
	if res.LayersReused != 2 {
		t.Errorf("Push of 2.0 reused %d layers, want 2 (big, app)", res.LayersReused)
	}
	img, _, err := Encapsulate(ctx, src, "os", t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if d, err := img.Digest(); err != nil || d.String() != res.ManifestDigest {
		t.Errorf("Push of 2.0 with reused layers = %s, the image built whole = %s (%v)", res.ManifestDigest, d, err)
	}
	// (This registry keeps blobs for all its repositories: another one has none.)
	empty := httptest.NewServer(newTestRegistry())
	defer empty.Close()
	emptyHost := strings.TrimPrefix(empty.URL, "http://")
	other, err := Push(ctx, src, "os", "docker://"+emptyHost+"/strata/os:2.0", PushOptions{RegistryOptions: ro})
	if err != nil || other.LayersReused != 0 || other.LayersFromCache != other.Layers-1 || other.ManifestDigest != res.ManifestDigest {
		t.Errorf("Push to a registry without the blobs = %+v, %v; want 0 reused, all but the commit's layer from the blob cache, digest %s", other, err, res.ManifestDigest)
	}
	for _, h := range []string{host, emptyHost} {
		dst := newRepo(t, repo.ModeBareUser)
		got, err := Pull(ctx, dst, "docker://"+h+"/strata/os:2.0", PullOptions{RegistryOptions: ro})
		if err != nil || got.Commit != v2 {
			t.Errorf("Pull of %s/strata/os:2.0 = %v, %v; want %s", h, got, err, v2)
		}
	}
}
