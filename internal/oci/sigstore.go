package oci

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/strata-os/strata/internal/errdefs"
)

// Sigstore "simple signing" as cosign writes it and containers/image checks it with a
// sigstoreSigned policy (docs/oci.md): the signatures of image sha256:HEX are the layers
// of the image tagged sha256-HEX.sig in the same repository; each layer is a JSON payload
// naming the manifest digest, its ECDSA signature base64 in an annotation.
const (
	sigstorePayloadType = types.MediaType("application/vnd.dev.cosign.simplesigning.v1+json")
	sigstoreSigAnnot    = "dev.cosignproject.cosign/signature"
	sigstoreSigType     = "cosign container image signature"
	// maxSignatures bounds the signature layers read for one image.
	maxSignatures = 32
)

type simpleSigning struct {
	Critical struct {
		Identity struct {
			DockerReference string `json:"docker-reference"`
		} `json:"identity"`
		Image struct {
			DockerManifestDigest string `json:"docker-manifest-digest"`
		} `json:"image"`
		Type string `json:"type"`
	} `json:"critical"`
	Optional map[string]any `json:"optional"`
}

func sigTag(repo name.Repository, digest v1.Hash) name.Tag {
	return repo.Tag(digest.Algorithm + "-" + digest.Hex + ".sig")
}

// LoadSigstorePublicKeys reads PEM public keys (PKIX, as cosign and skopeo write them).
func LoadSigstorePublicKeys(files ...string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("reading public key: %w", err)
		}
		k, err := parseSigstorePublicKeys(b, f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// parseSigstorePublicKeys parses the PEM public keys of b, which came from src.
func parseSigstorePublicKeys(b []byte, src string) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			break
		}
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("public key %s: %v: %w", src, err, errdefs.ErrInvalid)
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("public keys %s: no PEM public key: %w", src, errdefs.ErrInvalid)
	}
	return keys, nil
}

// LoadSigstorePrivateKey reads an unencrypted PEM ECDSA private key (PKCS #8 or SEC 1).
func LoadSigstorePrivateKey(file string) (*ecdsa.PrivateKey, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("reading signing key: %w", err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("signing key %s: no PEM block: %w", file, errdefs.ErrInvalid)
	}
	if k, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
		if ek, ok := k.(*ecdsa.PrivateKey); ok {
			return ek, nil
		}
	}
	k, err := x509.ParseECPrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: not an ECDSA private key: %w", file, errdefs.ErrInvalid)
	}
	return k, nil
}

// signImage writes a simple-signing signature of the image digest at ref.
func signImage(ctx context.Context, ref name.Reference, digest v1.Hash, key *ecdsa.PrivateKey, ro RegistryOptions) error {
	var p simpleSigning
	p.Critical.Identity.DockerReference = ref.Context().Name() + tagSuffix(ref)
	p.Critical.Image.DockerManifestDigest = digest.String()
	p.Critical.Type = sigstoreSigType
	payload, err := json.Marshal(p)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(payload)
	sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
	if err != nil {
		return fmt.Errorf("signing %s: %w", digest, err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: static.NewLayer(payload, sigstorePayloadType),
		Annotations: map[string]string{sigstoreSigAnnot: base64.StdEncoding.EncodeToString(sig)}})
	if err != nil {
		return err
	}
	opts, err := ro.remoteOptions(ctx)
	if err != nil {
		return err
	}
	if err := remote.Write(sigTag(ref.Context(), digest), img, opts...); err != nil {
		return fmt.Errorf("pushing signature of %s: %w", digest, classify(err))
	}
	return nil
}

func tagSuffix(ref name.Reference) string {
	if t, ok := ref.(name.Tag); ok {
		return ":" + t.TagStr()
	}
	return ""
}

// verifyImage checks that one of the image's sigstore signatures is by one of keys and
// names digest.
func verifyImage(ctx context.Context, ref name.Reference, digest v1.Hash, keys []crypto.PublicKey, ro RegistryOptions) error {
	opts, err := ro.remoteOptions(ctx)
	if err != nil {
		return err
	}
	sigImg, err := remote.Image(sigTag(ref.Context(), digest), opts...)
	if err != nil {
		return fmt.Errorf("fetching signatures of %s: %w: %w", digest, classify(err), errdefs.ErrFailedPrecondition)
	}
	mf, err := sigImg.Manifest()
	if err != nil {
		return fmt.Errorf("reading signatures of %s: %w", digest, err)
	}
	if len(mf.Layers) > maxSignatures {
		return fmt.Errorf("signatures of %s: %d, over %d: %w", digest, len(mf.Layers), maxSignatures, errdefs.ErrInvalid)
	}
	for _, d := range mf.Layers {
		if d.MediaType != sigstorePayloadType || d.Size > 1<<20 {
			continue
		}
		sig, err := base64.StdEncoding.DecodeString(d.Annotations[sigstoreSigAnnot])
		if err != nil {
			continue
		}
		l, err := sigImg.LayerByDigest(d.Digest)
		if err != nil {
			return fmt.Errorf("reading signature %s: %w", d.Digest, err)
		}
		rc, err := l.Compressed() // checked against its digest by go-containerregistry
		if err != nil {
			return fmt.Errorf("reading signature %s: %w", d.Digest, classify(err))
		}
		payload, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if err != nil {
			return fmt.Errorf("reading signature %s: %w", d.Digest, err)
		}
		if !signedBy(payload, sig, keys) {
			continue
		}
		var p simpleSigning
		dec := json.NewDecoder(bytes.NewReader(payload))
		if err := dec.Decode(&p); err != nil || p.Critical.Type != sigstoreSigType ||
			p.Critical.Image.DockerManifestDigest != digest.String() || !identityMatches(ref, p.Critical.Identity.DockerReference) {
			continue
		}
		return nil
	}
	return fmt.Errorf("%s: no signature by a trusted key names this image: %w", digest, errdefs.ErrFailedPrecondition)
}

// identityMatches says whether a signature's docker-reference names ref: the same
// repository with the same tag, or without one (containers/image's matchRepoDigestOrExact).
// A reference by digest, as an update service hands out, matches any identity of its
// repository: the digest it pins is what the signature's docker-manifest-digest names.
func identityMatches(ref name.Reference, identity string) bool {
	repo := ref.Context().Name()
	if _, ok := ref.(name.Digest); ok {
		id, err := name.ParseReference(identity)
		return err == nil && id.Context().Name() == repo
	}
	return identity == repo+tagSuffix(ref) || identity == repo
}

func signedBy(payload, sig []byte, keys []crypto.PublicKey) bool {
	sum := sha256.Sum256(payload)
	for _, k := range keys {
		if ek, ok := k.(*ecdsa.PublicKey); ok && ecdsa.VerifyASN1(ek, sum[:], sig) {
			return true
		}
	}
	return false
}
