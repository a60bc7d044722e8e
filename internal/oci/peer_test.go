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
