//go:build peer

package oci

import (
	"context"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// TestPeerRegistryAndSkopeo pushes to Debian's docker-registry over TLS with htpasswd
// auth (credentials from auth.json, the CA from a file), lets skopeo 1.9 inspect and copy
// the image, and pulls every copy back to the same commit checksum.
func TestPeerRegistryAndSkopeo(t *testing.T) {
	skopeo := testutil.RequireTool(t, "skopeo", "skopeo")
	reg := startRegistry(t, true)
	t.Setenv("REGISTRY_AUTH_FILE", reg.Auth)
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	ro := RegistryOptions{CAFile: reg.CAFile}
	dest := "docker://" + reg.Host + "/strata/os:1.0"
	if _, err := Push(ctx, src, "os", dest, PushOptions{}); err == nil {
		t.Errorf("Push without the CA file succeeded, want a certificate error")
	}
	pushed, err := Push(ctx, src, "os", dest, PushOptions{RegistryOptions: ro})
	if err != nil {
		t.Fatal(err)
	}

	var info struct {
		Digest string
		Labels map[string]string
		Layers []string
	}
	out := run(t, skopeo, "inspect", "--cert-dir", reg.CADir, "--authfile", reg.Auth, dest)
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatal(err)
	}
	if info.Digest != pushed.ManifestDigest || info.Labels[LabelCommit] != commit.String() || len(info.Layers) != pushed.Layers {
		t.Errorf("skopeo inspect = digest %s, commit label %s, %d layers; want %s, %s, %d",
			info.Digest, info.Labels[LabelCommit], len(info.Layers), pushed.ManifestDigest, commit, pushed.Layers)
	}

	dir := t.TempDir()
	layoutRef := "oci:" + filepath.Join(dir, "layout") + ":copied"
	archive := "oci-archive:" + filepath.Join(dir, "copy.tar")
	run(t, skopeo, "copy", "--src-cert-dir", reg.CADir, "--authfile", reg.Auth, dest, layoutRef)
	run(t, skopeo, "copy", "--src-cert-dir", reg.CADir, "--authfile", reg.Auth, dest, archive)
	// skopeo pushes strata's own archive to the registry under another tag.
	own := "oci-archive:" + filepath.Join(dir, "own.tar")
	if _, err := Push(ctx, src, "os", own, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	viaSkopeo := "docker://" + reg.Host + "/strata/os:via-skopeo"
	run(t, skopeo, "copy", "--dest-cert-dir", reg.CADir, "--authfile", reg.Auth, own, viaSkopeo)

	for _, from := range []string{dest, layoutRef, archive, viaSkopeo} {
		dst := newRepo(t, repo.ModeBareUser)
		res, err := Pull(ctx, dst, from, PullOptions{RegistryOptions: ro, Ref: "os"})
		if err != nil {
			t.Fatalf("Pull(%s): %v", from, err)
		}
		if res.Commit != commit {
			t.Errorf("Pull(%s) = %s, want the pushed commit %s", from, res.Commit, commit)
		}
		fsckClean(t, dst)
	}
}

// TestPeerRegistryPlainHTTP: a registry without TLS is reachable only with Insecure.
func TestPeerRegistryPlainHTTP(t *testing.T) {
	reg := startRegistry(t, false)
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	dest := "docker://" + reg.Host + "/strata/os:1.0"
	if _, err := Push(ctx, src, "os", dest, PushOptions{}); err == nil {
		t.Fatal("Push over plain HTTP without Insecure succeeded")
	}
	ins := RegistryOptions{Insecure: true}
	if _, err := Push(ctx, src, "os", dest, PushOptions{RegistryOptions: ins}); err != nil {
		t.Fatal(err)
	}
	dst := newRepo(t, repo.ModeArchive)
	res, err := Pull(ctx, dst, dest, PullOptions{RegistryOptions: ins})
	if err != nil || res.Commit != commit {
		t.Fatalf("Pull = %v, %v, want %s", res, err, commit)
	}
}

// TestPeerRegistryLocalCommitThenUpdate: a node whose repository has the commit of a tag
// of Debian's docker-registry already (as an object pull leaves it) pulls that tag without
// downloading a layer, and the next tag, which changes one package, downloads only the
// layers that changed (before, it downloaded every layer: no layer had a ref).
func TestPeerRegistryLocalCommitThenUpdate(t *testing.T) {
	reg := startRegistry(t, false)
	ctx := context.Background()
	ins := RegistryOptions{Insecure: true}
	up := newRepo(t, repo.ModeArchive)
	v1 := commitTree(t, up, osTree(t, "1.0"), "1.0")
	tag1 := "docker://" + reg.Host + "/strata/os:1.0"
	if _, err := Push(ctx, up, "os", tag1, PushOptions{RegistryOptions: ins}); err != nil {
		t.Fatal(err)
	}
	node := newRepo(t, repo.ModeBareUser)
	commitTree(t, node, osTree(t, "1.0"), "1.0")
	res, err := Pull(ctx, node, tag1, PullOptions{RegistryOptions: ins, Ref: "os"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != v1 || res.LayersFetched != 0 || res.BytesFetched != 0 || res.LayersRecorded != 4 {
		t.Errorf("Pull of the local commit = %s, %d layers (%d bytes) fetched, %d recorded; want %s, 0, 0, 4",
			res.Commit, res.LayersFetched, res.BytesFetched, res.LayersRecorded, v1)
	}

	v2 := commitTree(t, up, osTree(t, "2.0"), "2.0")
	tag2 := "docker://" + reg.Host + "/strata/os:2.0"
	pushed, err := Push(ctx, up, "os", tag2, PushOptions{RegistryOptions: ins})
	if err != nil {
		t.Fatal(err)
	}
	// The push too builds only what changed: the registry has the layers of big and app.
	if pushed.LayersReused != 2 {
		t.Errorf("Push of 2.0 reused %d layers the registry had, want 2", pushed.LayersReused)
	}
	img, _, err := Encapsulate(ctx, up, "os", t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ls, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		n, _ := l.Size()
		total += n
	}
	res, err = Pull(ctx, node, tag2, PullOptions{RegistryOptions: ins, Ref: "os"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Commit != v2 || res.LayersFetched != 3 || res.LayersSkipped != 2 || res.BytesFetched >= total {
		t.Errorf("Pull of 2.0 = %s, %d of %d layers fetched (%d kept), %d of %d bytes; want %s, 3 (unpackaged, tool, commit), 2 kept, fewer bytes",
			res.Commit, res.LayersFetched, len(ls), res.LayersSkipped, res.BytesFetched, total, v2)
	}
	fsckClean(t, node)
}
