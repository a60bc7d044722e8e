package oci

import (
	"bytes"
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Image reference forms a deployment's origin records, as ostree-ext spells them and
// rpm-ostree and bootc write them in container-image-reference= (docs/oci.md, "Nodes that
// follow a registry").
const (
	// ImageUnverifiedRegistry is followed without an image signature:
	// ostree-unverified-registry:HOST/NAME:TAG.
	ImageUnverifiedRegistry = "ostree-unverified-registry:"
	// ImageUnverifiedImage is the same with a transport: ostree-unverified-image:docker://….
	ImageUnverifiedImage = "ostree-unverified-image:"
	// ImageSigned requires what the containers policy (policy.json) says for the image:
	// ostree-image-signed:docker://HOST/NAME:TAG.
	ImageSigned = "ostree-image-signed:"
)

// DefaultPolicyFile is where containers/image tools read their signature policy.
const DefaultPolicyFile = "/etc/containers/policy.json"

// ImageReference is an image an origin follows.
type ImageReference struct {
	Ref Ref
	// Signed says the image must satisfy the containers policy (ostree-image-signed:).
	Signed bool
}

// String returns the origin form: ostree-unverified-registry:HOST/NAME:TAG for an unsigned
// registry image, else ostree-unverified-image: or ostree-image-signed: with the transport.
func (ir ImageReference) String() string {
	switch {
	case ir.Signed:
		return ImageSigned + ir.Ref.String()
	case ir.Ref.Transport == TransportRegistry:
		return ImageUnverifiedRegistry + ir.Ref.Name
	}
	return ImageUnverifiedImage + ir.Ref.String()
}

// DigestRef returns the reference of the image's repository pinned to digest
// (HOST/NAME@sha256:…), as a release graph names an image payload.
func (ir ImageReference) DigestRef(digest string) (string, error) {
	nr, err := name.ParseReference(ir.Ref.Name)
	if err != nil || ir.Ref.Transport != TransportRegistry {
		return "", fmt.Errorf("image reference %s names no registry repository: %w", ir, errdefs.ErrInvalid)
	}
	return nr.Context().Name() + "@" + digest, nil
}

// Tag returns the tag of a registry reference, "" when it has none.
func (ir ImageReference) Tag() string {
	nr, err := name.ParseReference(ir.Ref.Name)
	if t, ok := nr.(name.Tag); err == nil && ok {
		return t.TagStr()
	}
	return ""
}

// ParseImageReference parses an origin's image reference, or a plain transport reference
// (docker://…, oci:…, oci-archive:…) as an unverified one.
func ParseImageReference(s string) (ImageReference, error) {
	var ir ImageReference
	rest := s
	switch {
	case strings.HasPrefix(s, ImageUnverifiedRegistry):
		rest = "docker://" + strings.TrimPrefix(s, ImageUnverifiedRegistry)
	case strings.HasPrefix(s, ImageUnverifiedImage):
		rest = strings.TrimPrefix(s, ImageUnverifiedImage)
	case strings.HasPrefix(s, ImageSigned):
		rest, ir.Signed = strings.TrimPrefix(s, ImageSigned), true
	case strings.HasPrefix(s, "ostree-remote-registry:"), strings.HasPrefix(s, "ostree-remote-image:"):
		return ir, fmt.Errorf("image reference %q: verification by an ostree remote's keys: %w", s, errdefs.ErrUnsupported)
	}
	ref, err := ParseRef(rest)
	if err != nil {
		return ir, err
	}
	if ir.Signed && ref.Transport != TransportRegistry {
		return ir, fmt.Errorf("image reference %q: signatures live in registries: %w", s, errdefs.ErrUnsupported)
	}
	ir.Ref = ref
	return ir, nil
}

// PolicyKeys returns what the containers policy file (containers-policy.json(5)) requires
// of the registry image ref: accept with no requirement, or a signature by one of each
// returned key set. The most specific scope of the docker transport applies (HOST/NAME:TAG,
// HOST/NAME, its parent namespaces, HOST), else the transport's "", else "default".
// Requirements other than insecureAcceptAnything, reject and sigstoreSigned (GPG signedBy)
// are refused as unsupported, and reject as a failed precondition: nothing is followed that
// the policy does not let strata check.
func PolicyKeys(file string, ref Ref) ([][]crypto.PublicKey, error) {
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading containers policy %s: %w", file, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading containers policy %s: %w", file, err)
	}
	var p struct {
		Default    []policyRequirement                       `json:"default"`
		Transports map[string]map[string][]policyRequirement `json:"transports"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("parsing containers policy %s: %v: %w", file, err, errdefs.ErrInvalid)
	}
	nr, err := name.ParseReference(ref.Name)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %v: %w", ref, err, errdefs.ErrInvalid)
	}
	reqs, scope := p.Default, "default"
	scopes := p.Transports["docker"]
	for _, s := range policyScopes(nr) {
		if r, ok := scopes[s]; ok {
			reqs, scope = r, s
			break
		}
	}
	if len(reqs) == 0 {
		return nil, fmt.Errorf("containers policy %s: scope %q has no requirement: %w", file, scope, errdefs.ErrInvalid)
	}
	var sets [][]crypto.PublicKey
	for _, r := range reqs {
		switch r.Type {
		case "insecureAcceptAnything":
		case "reject":
			return nil, fmt.Errorf("containers policy %s rejects %s (scope %q): %w", file, ref, scope, errdefs.ErrFailedPrecondition)
		case "sigstoreSigned":
			keys, err := r.keys()
			if err != nil {
				return nil, fmt.Errorf("containers policy %s, scope %q: %w", file, scope, err)
			}
			sets = append(sets, keys)
		default:
			return nil, fmt.Errorf("containers policy %s, scope %q: requirement %q: %w", file, scope, r.Type, errdefs.ErrUnsupported)
		}
	}
	return sets, nil
}

// policyScopes lists the docker transport's scopes of ref, most specific first.
func policyScopes(ref name.Reference) []string {
	repo := ref.Context().Name()
	out := []string{repo + tagSuffix(ref)}
	if d, ok := ref.(name.Digest); ok {
		out[0] = repo + "@" + d.DigestStr()
	}
	for s := repo; ; {
		out = append(out, s)
		i := strings.LastIndexByte(s, '/')
		if i < 0 {
			break
		}
		s = s[:i]
	}
	return append(out, "")
}

type policyRequirement struct {
	Type     string   `json:"type"`
	KeyPath  string   `json:"keyPath"`
	KeyPaths []string `json:"keyPaths"`
	KeyData  string   `json:"keyData"`
}

func (r policyRequirement) keys() ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	if r.KeyPath != "" || len(r.KeyPaths) > 0 {
		files := r.KeyPaths
		if r.KeyPath != "" {
			files = append([]string{r.KeyPath}, files...)
		}
		k, err := LoadSigstorePublicKeys(files...)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	if r.KeyData != "" {
		pem, err := base64.StdEncoding.DecodeString(r.KeyData)
		if err != nil {
			return nil, fmt.Errorf("sigstoreSigned keyData: %v: %w", err, errdefs.ErrInvalid)
		}
		k, err := parseSigstorePublicKeys(pem, "keyData")
		if err != nil {
			return nil, err
		}
		keys = append(keys, k...)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("sigstoreSigned requirement without keyPath, keyPaths or keyData: %w", errdefs.ErrInvalid)
	}
	return keys, nil
}

// FollowOptions tune Follow.
type FollowOptions struct {
	PullOptions
	// Policy is the containers policy file for signed references; "" means DefaultPolicyFile.
	Policy string
	// Have is the manifest digest already deployed: when the reference still names it,
	// nothing is imported.
	Have string
	// Check reads (and verifies) the manifest and config only.
	Check bool
}

// FollowResult says what Follow found.
type FollowResult struct {
	Digest string // the manifest digest the reference names now
	// Commit is the imported commit; with Check, or when the digest is Have, the commit the
	// image's ostree.commit label names, zero for an image derived from it or without one.
	Commit ostree.Checksum
	Pull   *PullResult // nil when nothing was imported
	// BytesToFetch, with Check, is what importing the image would download.
	BytesToFetch int64
}

// Follow reads the image an origin's reference names, verifies it as the reference says
// (an ostree-image-signed: reference must satisfy the containers policy before any layer is
// fetched) and, when its digest is new, imports it as Pull does, fetching only the layers
// the repository lacks.
func Follow(ctx context.Context, r *repo.Repo, imgref string, opts FollowOptions) (*FollowResult, error) {
	ir, err := ParseImageReference(imgref)
	if err != nil {
		return nil, err
	}
	if ir.Signed {
		policy := opts.Policy
		if policy == "" {
			policy = DefaultPolicyFile
		}
		if opts.policySets, err = PolicyKeys(policy, ir.Ref); err != nil {
			return nil, err
		}
	}
	img, cleanup, err := openImage(ctx, ir.Ref, opts.RegistryOptions)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", ir.Ref, classify(err))
	}
	if err := verifyPolicy(ctx, ir.Ref, img, opts.PullOptions); err != nil {
		return nil, err
	}
	res := &FollowResult{Digest: d.String()}
	if opts.Check || res.Digest == opts.Have {
		cfg, err := img.ConfigFile()
		if err != nil {
			return nil, fmt.Errorf("reading config of %s: %w", ir.Ref, classify(err))
		}
		labels := cfg.Config.Labels
		diffIDs := cfg.RootFS.DiffIDs
		have := false
		if c, err := ostree.ParseChecksum(labels[LabelCommit]); err == nil {
			if fd := labels[LabelFinalDiffID]; fd == "" || len(diffIDs) > 0 && diffIDs[len(diffIDs)-1].String() == fd {
				res.Commit = c
			}
			have, _ = r.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
		}
		if layers, err := img.Layers(); err == nil && len(layers) == len(diffIDs) {
			baseEnd := len(layers)
			for i, d := range diffIDs {
				if d.String() == labels[LabelFinalDiffID] {
					baseEnd = i + 1
				}
			}
			_, _, res.BytesToFetch = layersToFetch(r, layers, diffIDs, baseEnd, have)
		}
		return res, nil
	}
	if opts.MaxLayerSize == 0 {
		opts.MaxLayerSize = DefaultMaxLayerSize
	}
	if res.Pull, err = importImage(ctx, r, ir.Ref, img, opts.PullOptions); err != nil {
		return nil, fmt.Errorf("importing %s: %w", ir.Ref, err)
	}
	res.Commit = res.Pull.Commit
	return res, nil
}

// verifyPolicy checks the signature requirements of a policy (each set: a signature by one
// of its keys) and the explicit SigstoreKeys.
func verifyPolicy(ctx context.Context, ref Ref, img v1.Image, opts PullOptions) error {
	sets := opts.policySets
	if len(opts.SigstoreKeys) > 0 {
		sets = append(sets, opts.SigstoreKeys)
	}
	if len(sets) == 0 {
		return nil
	}
	if ref.Transport != TransportRegistry {
		return fmt.Errorf("verifying %s: sigstore signatures live in registries: %w", ref, errdefs.ErrUnsupported)
	}
	nr, err := name.ParseReference(ref.Name, opts.nameOptions()...)
	if err != nil {
		return fmt.Errorf("parsing %s: %v: %w", ref, err, errdefs.ErrInvalid)
	}
	d, err := img.Digest()
	if err != nil {
		return err
	}
	for _, keys := range sets {
		if err := verifyImage(ctx, nr, d, keys, opts.RegistryOptions); err != nil {
			return fmt.Errorf("verifying %s: %w", ref, err)
		}
	}
	return nil
}
