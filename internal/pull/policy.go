package pull

import (
	"context"
	"fmt"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// ErrNoTrustedKey is returned by PolicyFromRemote when signatures are to be
// verified but no key is trusted: neither the caller nor the remote's
// config names one. It is also errdefs.ErrFailedPrecondition.
var ErrNoTrustedKey = fmt.Errorf("no trusted key to verify signatures with: %w", errdefs.ErrFailedPrecondition)

// ErrDowngrade is returned when a ref would move to an older commit
// without Options.AllowDowngrade. It is also errdefs.ErrFailedPrecondition.
var ErrDowngrade = fmt.Errorf("refusing to downgrade: %w", errdefs.ErrFailedPrecondition)

// Policy is what a pull trusts: where it fetches from and which
// signatures it requires. Apply copies it into Options.
type Policy struct {
	// URL is the remote's base URL; empty for a pull by URL.
	URL string
	// Verifier checks commit signatures and summary.sig; nil with NoVerify.
	Verifier Verifier
	// NoVerify pulls without checking signatures.
	NoVerify bool
	// RequireSummarySignature refuses a summary without summary.sig.
	RequireSummarySignature bool
	// The remote's strata keys, which ostree ignores: allow-cross-host-redirects,
	// max-content-size and max-inflate-ratio (docs/threat-model.md). Zero keeps the defaults.
	AllowCrossHostRedirects bool
	MaxContentSize          int64
	MaxInflateRatio         int64
}

// Apply sets the URL (unless opts has one) and the verification of opts.
func (p Policy) Apply(opts *Options) {
	if opts.URL == "" {
		opts.URL = p.URL
	}
	opts.Verifier, opts.NoVerify, opts.RequireSummarySignature = p.Verifier, p.NoVerify, p.RequireSummarySignature
	opts.AllowCrossHostRedirects = p.AllowCrossHostRedirects
	if p.MaxContentSize != 0 {
		opts.MaxContentSize = p.MaxContentSize
	}
	if p.MaxInflateRatio != 0 {
		opts.MaxInflateRatio = p.MaxInflateRatio
	}
}

// PolicyFromRemote returns the trust policy of a pull from remote, as
// libostree derives it from the remote's config
// (ostree-repo-pull-verify.c): its url, sign-verify-summary, and its
// ed25519 keys (verification-ed25519-key, an inline base64 key, and
// verification-ed25519-file, a file of keys). Keys given by the caller
// replace the remote's, the way ostree pull's --trusted-key style options
// override the config. remote "" is a pull by URL: only the given keys
// count.
//
// With noVerify the policy verifies nothing. Otherwise a policy without
// any key is an error wrapping ErrNoTrustedKey: strata never pulls
// unverified by default. strata does not check GPG signatures
// (gpg-verify), so a remote that relies on them alone has no key here.
func PolicyFromRemote(r *repo.Repo, remote string, keys []sign.PublicKey, noVerify bool) (Policy, error) {
	p := Policy{NoVerify: noVerify}
	trusted := keys
	if remote != "" {
		rm, err := r.GetRemote(remote)
		if err != nil {
			return Policy{}, err
		}
		p.URL = rm.URL
		group := fmt.Sprintf("remote %q", rm.Name)
		if p.RequireSummarySignature, err = r.Config().GetBool(group, "sign-verify-summary", false); err != nil {
			return Policy{}, fmt.Errorf("reading remote %s: %w", rm.Name, err)
		}
		if p.AllowCrossHostRedirects, err = r.Config().GetBool(group, "allow-cross-host-redirects", false); err != nil {
			return Policy{}, fmt.Errorf("reading remote %s: %w", rm.Name, err)
		}
		size, err := r.Config().GetInt(group, "max-content-size", 0)
		if err != nil {
			return Policy{}, fmt.Errorf("reading remote %s: %w", rm.Name, err)
		}
		ratio, err := r.Config().GetInt(group, "max-inflate-ratio", 0)
		if err != nil {
			return Policy{}, fmt.Errorf("reading remote %s: %w", rm.Name, err)
		}
		p.MaxContentSize, p.MaxInflateRatio = int64(size), int64(ratio)
		if len(keys) == 0 && !noVerify {
			if trusted, err = remoteKeys(rm); err != nil {
				return Policy{}, err
			}
		}
	}
	if noVerify {
		return p, nil
	}
	if len(trusted) == 0 {
		if remote != "" {
			return Policy{}, fmt.Errorf("remote %s: %w", remote, ErrNoTrustedKey)
		}
		return Policy{}, ErrNoTrustedKey
	}
	p.Verifier = Signatures(sign.NewEd25519Verifier(trusted, nil))
	return p, nil
}

// remoteKeys reads the ed25519 keys a remote's config trusts.
func remoteKeys(rm repo.Remote) ([]sign.PublicKey, error) {
	var keys []sign.PublicKey
	if rm.Ed25519Key != "" {
		k, err := sign.ParsePublicKey(rm.Ed25519Key)
		if err != nil {
			return nil, fmt.Errorf("remote %s verification-ed25519-key: %w", rm.Name, err)
		}
		keys = append(keys, k)
	}
	if rm.Ed25519File != "" {
		fk, err := sign.LoadTrustedKeys(rm.Ed25519File)
		if err != nil {
			return nil, fmt.Errorf("remote %s verification-ed25519-file: %w", rm.Name, err)
		}
		keys = append(keys, fk...)
	}
	return keys, nil
}

// RemoteRefs returns the refs the summary of opts.URL lists, as `ostree
// pull REMOTE` with no refs pulls them: the summary is verified as a pull
// verifies it (opts.Verifier, RequireSummarySignature). A remote without
// a summary lists no refs: errdefs.ErrNotFound.
func RemoteRefs(ctx context.Context, r *repo.Repo, opts Options) ([]string, error) {
	if opts.Verifier == nil && !opts.NoVerify {
		return nil, ErrNoTrustedKey
	}
	p, err := newPuller(r, opts)
	if err != nil {
		return nil, err
	}
	sum, err := p.fetchSummary(ctx)
	if err != nil {
		return nil, err
	}
	if sum == nil {
		return nil, fmt.Errorf("remote %s has no summary to list its refs: %w", opts.URL, errdefs.ErrNotFound)
	}
	refs := make([]string, len(sum.Refs))
	for i, e := range sum.Refs {
		refs[i] = e.Name
	}
	return refs, nil
}
