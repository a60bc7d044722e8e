//go:build peer

package oci

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/oci/ocitest"
	"github.com/strata-os/strata/internal/repo"
)

// skopeoSigstore runs upstream skopeo with a policy and a registries.d that reads and
// writes sigstore signatures as registry attachments (the sha256-<digest>.sig tags).
type skopeoSigstore struct {
	bin, regd string
	reg       *ocitest.Registry
}

func newSkopeoSigstore(t *testing.T, reg *ocitest.Registry) *skopeoSigstore {
	regd := filepath.Join(t.TempDir(), "registries.d")
	if err := os.MkdirAll(regd, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(regd, "default.yaml"), []byte("default-docker:\n  use-sigstore-attachments: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return &skopeoSigstore{bin: ocitest.UpstreamSkopeo(t), regd: regd, reg: reg}
}

// policy writes a policy.json that requires, for the registry's strata/os, a sigstore
// signature by the key in pub, and rejects everything else.
func (s *skopeoSigstore) policy(t *testing.T, pub string) string {
	p := map[string]any{
		"default": []any{map[string]any{"type": "reject"}},
		"transports": map[string]any{
			"docker": map[string]any{
				s.reg.Host + "/strata/os": []any{map[string]any{"type": "sigstoreSigned", "keyPath": pub}},
			},
			"oci":         map[string]any{"": []any{map[string]any{"type": "insecureAcceptAnything"}}},
			"oci-archive": map[string]any{"": []any{map[string]any{"type": "insecureAcceptAnything"}}},
		},
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "policy.json")
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func (s *skopeoSigstore) run(policy string, args ...string) ([]byte, error) {
	args = append([]string{"--policy", policy, "--registries.d", s.regd}, args...)
	return exec.Command(s.bin, args...).CombinedOutput()
}

// TestPeerSigstoreStrataSignsSkopeoVerifies: an image strata pushes with --sign-key is
// accepted by upstream skopeo under a sigstoreSigned policy naming the key's public half,
// and refused under one naming another key.
func TestPeerSigstoreStrataSignsSkopeoVerifies(t *testing.T) {
	reg := startRegistry(t, true)
	t.Setenv("REGISTRY_AUTH_FILE", reg.Auth)
	sk := newSkopeoSigstore(t, reg)
	ctx := context.Background()
	dir := t.TempDir()
	key, pub := sigKey(t, dir, "release")
	_, otherPub := sigKey(t, dir, "other")
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	dest := "docker://" + reg.Host + "/strata/os:1.0"
	pushed, err := Push(ctx, src, "os", dest, PushOptions{RegistryOptions: RegistryOptions{CAFile: reg.CAFile}, SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	copyTo := func(policy, name string) ([]byte, error) {
		return sk.run(policy, "copy", "--remove-signatures", "--src-cert-dir", reg.CADir, "--authfile", reg.Auth,
			dest, "oci:"+filepath.Join(dir, name)+":copied")
	}
	if out, err := copyTo(sk.policy(t, pub), "accepted"); err != nil {
		t.Fatalf("skopeo copy with a policy naming strata's signing key: %v\n%s", err, out)
	}
	got, err := os.ReadFile(filepath.Join(dir, "accepted", "index.json"))
	if err != nil || !strings.Contains(string(got), pushed.ManifestDigest) {
		t.Errorf("skopeo's copy index.json = %s (%v), want the pushed manifest %s", got, err, pushed.ManifestDigest)
	}
	out, err := copyTo(sk.policy(t, otherPub), "refused")
	if err == nil {
		t.Fatalf("skopeo copy with a policy naming another key succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "Source image rejected: cryptographic signature verification failed") {
		t.Errorf("skopeo copy refused for another reason than the signature: %s", out)
	}
}

// TestPeerSigstoreSkopeoSignsStrataVerifies: an image upstream skopeo copies to the
// registry with --sign-by-sigstore-private-key (a key of its generate-sigstore-key) pulls
// into strata with that key's public half, to the pushed commit, and is refused with
// another key before a layer is fetched.
func TestPeerSigstoreSkopeoSignsStrataVerifies(t *testing.T) {
	reg := startRegistry(t, true)
	t.Setenv("REGISTRY_AUTH_FILE", reg.Auth)
	sk := newSkopeoSigstore(t, reg)
	ctx := context.Background()
	dir := t.TempDir()
	pass := filepath.Join(dir, "passphrase")
	if err := os.WriteFile(pass, []byte("strata-test\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	prefix := filepath.Join(dir, "skopeo-key")
	if out, err := exec.Command(sk.bin, "generate-sigstore-key", "--output-prefix", prefix, "--passphrase-file", pass).CombinedOutput(); err != nil {
		t.Fatalf("skopeo generate-sigstore-key: %v\n%s", err, out)
	}
	_, otherPub := sigKey(t, dir, "other")

	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	archive := "oci-archive:" + filepath.Join(dir, "os.tar")
	if _, err := Push(ctx, src, "os", archive, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	dest := "docker://" + reg.Host + "/strata/os:skopeo-signed"
	acceptAll := sk.policy(t, prefix+".pub")
	if out, err := sk.run(acceptAll, "copy", "--dest-cert-dir", reg.CADir, "--authfile", reg.Auth,
		"--sign-by-sigstore-private-key", prefix+".private", "--sign-passphrase-file", pass, archive, dest); err != nil {
		t.Fatalf("skopeo copy --sign-by-sigstore-private-key: %v\n%s", err, out)
	}

	ro := RegistryOptions{CAFile: reg.CAFile}
	trusted, err := LoadSigstorePublicKeys(prefix + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadSigstorePublicKeys(otherPub)
	if err != nil {
		t.Fatal(err)
	}
	refused := newRepo(t, repo.ModeBareUser)
	res, err := Pull(ctx, refused, dest, PullOptions{RegistryOptions: ro, SigstoreKeys: other, Ref: "os"})
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Fatalf("Pull with another key = %v, %v; want a failed precondition", res, err)
	}
	if _, err := refused.ReadRef("", "os"); err == nil {
		t.Error("a refused Pull moved the ref")
	}
	node := newRepo(t, repo.ModeBareUser)
	res, err = Pull(ctx, node, dest, PullOptions{RegistryOptions: ro, SigstoreKeys: trusted, Ref: "os"})
	if err != nil {
		t.Fatalf("Pull of skopeo's signed image with its key: %v", err)
	}
	if res.Commit != commit {
		t.Errorf("Pull = %s, want the pushed commit %s", res.Commit, commit)
	}
	fsckClean(t, node)
}
