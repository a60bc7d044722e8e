package oci

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

func TestPushPullRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	dir := t.TempDir()

	first, err := Push(ctx, src, "os", "oci:"+filepath.Join(dir, "a")+":v1", PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := Push(ctx, src, "os", "oci-archive:"+filepath.Join(dir, "b.tar"), PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.ManifestDigest != again.ManifestDigest {
		t.Errorf("Push twice = %s and %s, want the same manifest digest", first.ManifestDigest, again.ManifestDigest)
	}
	for _, from := range []string{"oci:" + filepath.Join(dir, "a") + ":v1", "oci-archive:" + filepath.Join(dir, "b.tar")} {
		for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUser} {
			dst := newRepo(t, mode)
			res, err := Pull(ctx, dst, from, PullOptions{Ref: "imported"})
			if err != nil {
				t.Fatalf("Pull(%s) into %s: %v", from, mode, err)
			}
			if res.Commit != commit {
				t.Errorf("Pull(%s) into %s = %s, want the pushed commit %s", from, mode, res.Commit, commit)
			}
			if got, err := dst.ReadRef("", "imported"); err != nil || got != commit {
				t.Errorf("ref imported = %s, %v, want %s", got, err, commit)
			}
			fsckClean(t, dst)
			again, err := Pull(ctx, dst, from, PullOptions{})
			if err != nil || again.LayersFetched != 0 {
				t.Errorf("second Pull fetched %d layers (%v), want none: the commit is there", again.LayersFetched, err)
			}
		}
	}
}

func TestEncapsulateFormat(t *testing.T) {
	t.Parallel()
	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	img := encapsulated(t, src)
	cfg, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	last := cfg.RootFS.DiffIDs[len(cfg.RootFS.DiffIDs)-1].String()
	want := map[string]string{LabelCommit: commit.String(), LabelBootable: "true", LabelBootc: "1",
		LabelLinux: "6.1.0-1", LabelVersion: "1.0", LabelFinalDiffID: last}
	if d := cmp.Diff(want, cfg.Config.Labels); d != "" {
		t.Errorf("labels (-want +got):\n%s", d)
	}
	var comps []string
	for _, l := range mf.Layers {
		comps = append(comps, l.Annotations[AnnotationComponents])
	}
	wantComps := []string{"unpackaged", "big", "tool", "app", "ostree commit " + commit.String()}
	if d := cmp.Diff(wantComps, comps); d != "" {
		t.Errorf("layer components (-want +got):\n%s", d)
	}
	// The package "app" owns /etc/app/app.conf: its layer has it as /etc, with its parents.
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	names := layerNames(t, layers[3].Uncompressed)
	if d := cmp.Diff([]string{"./", "usr/", "etc/", "etc/app/", "etc/app/app.conf"}, names); d != "" {
		t.Errorf("app layer (-want +got):\n%s", d)
	}
	tool := layerNames(t, layers[2].Uncompressed)
	if !slices.Contains(tool, "usr/bin/tool-copy") || !slices.Contains(tool, "usr/bin/tool") {
		t.Errorf("tool layer = %v, want usr/bin/tool and tool-copy (/bin/tool-copy in the list)", tool)
	}
}

func layerNames(t *testing.T, open func() (io.ReadCloser, error)) []string {
	t.Helper()
	rc, err := open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

func TestPullDerived(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	base := commitTree(t, src, osTree(t, "1.0"), "1.0")
	img := derive(t, encapsulated(t, src),
		tarLayer(t, dirEntry("etc/"), fileEntry("etc/added.conf", "x=1\n"),
			dirEntry("usr/bin/"), fileEntry("usr/bin/.wh.tool-link", ""),
			dirEntry("usr/share/big/"), fileEntry("usr/share/big/.wh..wh..opq", ""), fileEntry("usr/share/big/new", "n"),
			dirEntry("var/lib/app/"), fileEntry("var/lib/app/state", "dropped"),
			tarEntry{h: tar.Header{Name: "var/lib/app/link", Typeflag: tar.TypeSymlink, Linkname: "/usr/share/big"}}),
		tarLayer(t, fileEntry("usr/bin/new-tool", "new")))
	dst := newRepo(t, repo.ModeBareUser)
	if _, err := Pull(ctx, dst, toLayout(t, encapsulated(t, src)), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := Pull(ctx, dst, toLayout(t, img), PullOptions{Ref: "derived"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Base != base || res.LayersFetched != 2 {
		t.Errorf("Pull = base %s, %d layers fetched, want base %s from the repository and the 2 derived layers", res.Base, res.LayersFetched, base)
	}
	c, err := dst.ReadCommit(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if c.Parent != base {
		t.Errorf("derived commit's parent = %s, want the base %s", c.Parent, base)
	}
	for p, want := range map[string]bool{
		"/usr/etc/added.conf": true, "/usr/etc/app/app.conf": true, "/usr/bin/new-tool": true,
		"/usr/bin/tool-link": false, "/usr/share/big/data": false, "/usr/share/big/new": true,
		"/usr/bin/tool": true, "/var/lib/app": false, "/etc": false,
	} {
		_, err := repo.Lookup(dst, res.Commit, p)
		if got := err == nil; got != want {
			t.Errorf("derived commit has %s = %v (%v), want %v", p, got, err, want)
		}
	}
	var sb strings.Builder
	if err := repo.Cat(ctx, dst, res.Commit.String(), "/"+DerivedTmpfiles, &sb); err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"d /var/lib/app 0755 0 0 -", "L /var/lib/app/link - - - - /usr/share/big"} {
		if !strings.Contains(sb.String(), line+"\n") {
			t.Errorf("%s = %q, want the line %q", DerivedTmpfiles, sb.String(), line)
		}
	}
	fsckClean(t, dst)
}

func TestPullRefusesBadInput(t *testing.T) {
	t.Parallel()
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	good := encapsulated(t, src)
	tests := []struct {
		name   string
		layers []tarEntry
		max    int64
		want   error
	}{
		{"dot-dot", []tarEntry{fileEntry("usr/../../x", "x")}, 0, errdefs.ErrInvalid},
		{"absolute", []tarEntry{fileEntry("/usr/x", "x")}, 0, errdefs.ErrInvalid},
		{"device node", []tarEntry{{h: tar.Header{Name: "usr/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}}, 0, errdefs.ErrInvalid},
		{"through a symlink", []tarEntry{fileEntry("usr/bin/tool-link/x", "x")}, 0, errdefs.ErrInvalid},
		{"whiteout through a symlink", []tarEntry{fileEntry("usr/bin/tool-link/.wh.x", "")}, 0, errdefs.ErrInvalid},
		{"whiteout of dot-dot", []tarEntry{fileEntry("usr/.wh...", "")}, 0, errdefs.ErrInvalid},
		{"huge layer", []tarEntry{fileEntry("usr/big", strings.Repeat("x", 2<<20))}, 1 << 20, errdefs.ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dst := newRepo(t, repo.ModeArchive)
			from := toLayout(t, derive(t, good, tarLayer(t, tc.layers...)))
			_, err := Pull(context.Background(), dst, from, PullOptions{Ref: "x", MaxLayerSize: tc.max})
			if !errors.Is(err, tc.want) {
				t.Fatalf("Pull = %v, want %v", err, tc.want)
			}
			refusedCleanly(t, dst)
		})
	}
}

// refusedCleanly checks that a refused pull moved no ref and left a clean repository.
func refusedCleanly(t *testing.T, r *repo.Repo) {
	t.Helper()
	refs, err := r.ListRefs()
	if err != nil || len(refs) != 0 {
		t.Errorf("refs after a refused pull = %v, %v, want none", refs, err)
	}
	fsckClean(t, r)
}

func TestPullRefusesTamperedBlob(t *testing.T) {
	t.Parallel()
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	from := toLayout(t, encapsulated(t, src))
	dir := strings.TrimPrefix(from, "oci:")
	mf, err := encapsulated(t, src).Manifest()
	if err != nil {
		t.Fatal(err)
	}
	blob := filepath.Join(dir, "blobs", "sha256", mf.Layers[2].Digest.Hex)
	b, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := newRepo(t, repo.ModeArchive)
	_, err = Pull(context.Background(), dst, from, PullOptions{Ref: "x"})
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "not its digest") {
		t.Fatalf("Pull of a tampered blob = %v, want ErrInvalid saying the blob is not its digest", err)
	}
	refusedCleanly(t, dst)
}

func TestPullRefusesForeignTree(t *testing.T) {
	t.Parallel()
	// Layers that do not rebuild the tree the carried commit names are refused: a pull
	// never writes a commit whose tree it did not build.
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	extra := tarLayer(t, fileEntry("usr/planted", "x"))
	d, err := extra.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	forged := derive(t, encapsulated(t, src), extra)
	cfg, err := forged.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cfg = cfg.DeepCopy()
	cfg.Config.Labels[LabelFinalDiffID] = d.String()
	if forged, err = mutate.ConfigFile(forged, cfg); err != nil {
		t.Fatal(err)
	}
	dst := newRepo(t, repo.ModeArchive)
	_, err = Pull(context.Background(), dst, toLayout(t, forged), PullOptions{Ref: "x"})
	if !errors.Is(err, errdefs.ErrInvalid) {
		t.Fatalf("Pull = %v, want ErrInvalid", err)
	}
	refusedCleanly(t, dst)
}

func TestRegistryTransport(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := httptest.NewServer(newTestRegistry())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	dest := "docker://" + host + "/strata/os:1.0"
	if _, err := Push(ctx, src, "os", dest, PushOptions{}); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Push over plain HTTP without Insecure = %v, want ErrFailedPrecondition", err)
	}
	ins := RegistryOptions{Insecure: true}
	if _, err := Push(ctx, src, "os", dest, PushOptions{RegistryOptions: ins}); err != nil {
		t.Fatal(err)
	}
	dst := newRepo(t, repo.ModeArchive)
	res, err := Pull(ctx, dst, dest, PullOptions{RegistryOptions: ins, Ref: "os"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != commit {
		t.Errorf("Pull = %s, want %s", res.Commit, commit)
	}
}

func TestPullManifestListWithoutPlatform(t *testing.T) {
	t.Parallel()
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	idx := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: encapsulated(t, src),
		Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "linux", Architecture: "s390x"}}})
	dir := filepath.Join(t.TempDir(), "layout")
	if _, err := layout.Write(dir, idx); err != nil {
		t.Fatal(err)
	}
	dst := newRepo(t, repo.ModeArchive)
	_, err := Pull(context.Background(), dst, "oci:"+dir, PullOptions{Ref: "x"})
	if !errors.Is(err, errdefs.ErrNotFound) {
		t.Fatalf("Pull of a manifest list for s390x only = %v, want ErrNotFound", err)
	}
	refusedCleanly(t, dst)
}

func TestPullRegistryError(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "broken", http.StatusInternalServerError)
	}))
	defer srv.Close()
	dst := newRepo(t, repo.ModeArchive)
	from := "docker://" + strings.TrimPrefix(srv.URL, "http://") + "/strata/os:1.0"
	_, err := Pull(context.Background(), dst, from, PullOptions{RegistryOptions: RegistryOptions{Insecure: true}, Ref: "x"})
	if !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Pull from a registry answering 500 = %v, want ErrUnavailable", err)
	}
	refusedCleanly(t, dst)
}

func newTestRegistry() http.Handler {
	return registry.New(registry.Logger(log.New(io.Discard, "", 0)))
}

func TestPullUpdateFetchesChangedLayers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	dst := newRepo(t, repo.ModeArchive)
	first, err := Pull(ctx, dst, toLayout(t, encapsulated(t, src)), PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// 2.0 changes the package "tool" and os-release (unpackaged); "big" and "app" are
	// the same layers as in 1.0.
	v2 := commitTree(t, src, osTree(t, "2.0"), "2.0")
	res, err := Pull(ctx, dst, toLayout(t, encapsulated(t, src)), PullOptions{Ref: "os"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != v2 {
		t.Errorf("Pull of 2.0 = %s, want %s", res.Commit, v2)
	}
	if first.LayersFetched != 5 || res.LayersFetched != 3 || res.LayersSkipped != 2 {
		t.Errorf("layers fetched: 1.0 %d, 2.0 %d (%d kept), want 5, then 3 (unpackaged, tool, commit) with 2 kept",
			first.LayersFetched, res.LayersFetched, res.LayersSkipped)
	}
	fsckClean(t, dst)
}

func TestPullCarriesDetachedMetadata(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	detached, err := ostree.Metadata{metaEntry("test.signature", "signed by the release key")}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	txn, err := src.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.WriteCommitMeta(commit, detached); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	dst := newRepo(t, repo.ModeArchive)
	if _, err := Pull(ctx, dst, toLayout(t, encapsulated(t, src)), PullOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := dst.ReadCommitMeta(commit)
	if err != nil || string(got) != string(detached) {
		t.Errorf("detached metadata after the pull = %x, %v, want %x", got, err, detached)
	}
}
