package oci

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

// TestSigstoreSignVerify: an image pushed with a sign key pulls with that key's public
// half; another key, an unsigned image, and a signature naming another image are refused
// before anything is imported.
func TestSigstoreSignVerify(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := httptest.NewServer(newTestRegistry())
	defer reg.Close()
	host := strings.TrimPrefix(reg.URL, "http://")
	ro := RegistryOptions{Insecure: true}
	dir := t.TempDir()
	key, pub := sigKey(t, dir, "release")
	_, otherPub := sigKey(t, dir, "other")
	trusted, err := LoadSigstorePublicKeys(pub)
	if err != nil {
		t.Fatal(err)
	}
	other, err := LoadSigstorePublicKeys(otherPub)
	if err != nil {
		t.Fatal(err)
	}
	src := newRepo(t, repo.ModeArchive)
	commit := commitTree(t, src, osTree(t, "1.0"), "1.0")
	signed := "docker://" + host + "/strata/os:signed"
	if _, err := Push(ctx, src, "os", signed, PushOptions{RegistryOptions: ro, SignKey: key}); err != nil {
		t.Fatal(err)
	}
	unsigned := "docker://" + host + "/strata/os:unsigned"
	if _, err := Push(ctx, src, "os", unsigned, PushOptions{RegistryOptions: ro}); err != nil {
		t.Fatal(err)
	}
	// A signature by the trusted key that names another image: v2 is signed, and its
	// signature is copied to the tag of v1's digest.
	commitTree(t, src, osTree(t, "2.0"), "2.0")
	v2 := "docker://" + host + "/strata/other:v2"
	v2res, err := Push(ctx, src, "os", v2, PushOptions{RegistryOptions: ro, SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	v1 := "docker://" + host + "/strata/other:v1"
	v1res, err := Push(ctx, src, commit.String(), v1, PushOptions{RegistryOptions: ro})
	if err != nil {
		t.Fatal(err)
	}
	repoRef, err := name.NewRepository(host+"/strata/other", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	copySignature(t, ctx, repoRef, v2res.ManifestDigest, v1res.ManifestDigest, ro)

	res, err := Pull(ctx, newRepo(t, repo.ModeArchive), signed, PullOptions{RegistryOptions: ro, SigstoreKeys: trusted})
	if err != nil || res.Commit != commit {
		t.Fatalf("Pull of the signed image = %v, %v, want %s", res, err, commit)
	}
	for _, tc := range []struct {
		name, from string
		keys       []crypto.PublicKey
	}{
		{"another key", signed, other},
		{"unsigned", unsigned, trusted},
		{"signature of another image", v1, trusted},
	} {
		dst := newRepo(t, repo.ModeArchive)
		_, err := Pull(ctx, dst, tc.from, PullOptions{RegistryOptions: ro, Ref: "x", SigstoreKeys: tc.keys})
		if !errors.Is(err, errdefs.ErrFailedPrecondition) {
			t.Errorf("%s: Pull = %v, want ErrFailedPrecondition", tc.name, err)
		}
		refusedCleanly(t, dst)
	}
	if _, err := Push(ctx, src, "os", "oci:"+filepath.Join(dir, "l"), PushOptions{SignKey: key}); !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("Push to a layout with a sign key = %v, want ErrUnsupported", err)
	}
}

// sigKey makes an ECDSA P-256 key and writes its public half as PEM.
func sigKey(t *testing.T, dir, name string) (*ecdsa.PrivateKey, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name+".pub")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return k, p
}

// copySignature puts the signature image of digest from under the tag of digest to.
func copySignature(t *testing.T, ctx context.Context, r name.Repository, from, to string, ro RegistryOptions) {
	t.Helper()
	opts, err := ro.remoteOptions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fh, err := v1.NewHash(from)
	if err != nil {
		t.Fatal(err)
	}
	th, err := v1.NewHash(to)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(sigTag(r, fh), opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(sigTag(r, th), img, opts...); err != nil {
		t.Fatal(err)
	}
}
