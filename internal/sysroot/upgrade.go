package sysroot

import (
	"context"
	"fmt"
	"slices"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Puller brings a ref of a remote into the sysroot repository. The
// sysroot does not fetch anything itself (internal/pull does, wired in by
// the command line), so it states the one thing it needs.
type Puller interface {
	// Pull fetches ref from remote into r, verified, and returns the
	// commit it names. With commitOnly only the commit object is fetched
	// and no ref moves.
	Pull(ctx context.Context, r *repo.Repo, remote, ref string, commitOnly bool) (ostree.Checksum, error)
}

// ImagePuller imports the image an origin's container image reference
// names into the sysroot repository, for an upgrade that follows a
// registry. The sysroot does not speak to registries itself (internal/oci
// does, wired in by the command line).
type ImagePuller interface {
	// PullImage reads the manifest imgref names now, verified as imgref
	// says (an ostree-image-signed: reference must carry a valid
	// signature), and returns its digest. Unless check is set or the
	// digest is have (what the base deployment came from), it imports the
	// image, fetching only the layers the repository lacks, and returns
	// the commit too; otherwise commit is the one the image names, or
	// zero when it names none.
	PullImage(ctx context.Context, r *repo.Repo, imgref, have string, check bool) (commit ostree.Checksum, digest string, err error)
}

// UpgradeOptions tune Upgrade.
type UpgradeOptions struct {
	// OSName is the stateroot to upgrade; "" means the booted one, else
	// the default deployment's.
	OSName string
	// Check only looks for a new commit (fetching the commit object, not
	// its tree) and deploys nothing.
	Check bool
	// Deploy carries the options of the deployment made (Stage,
	// Progress); its Refspec is the origin's.
	Deploy DeployOptions
	// Prepare runs, in order, on the commit about to be deployed (see
	// Preparer); nothing is staged when one fails.
	Prepare []Preparer
	// Images follows an origin that is a container image reference; nil
	// refuses such an origin.
	Images ImagePuller
}

// A Preparer turns the commit an upgrade is about to deploy into the one
// it deploys, after the pull and before anything is staged: local package
// layering derives a commit from the new base, extensions fetch the images
// that match it. It returns target itself when it has nothing to change.
// An error stops the upgrade with the node as it was; it should name what
// blocks the update.
type Preparer func(ctx context.Context, s *Sysroot, base Deployment, target ostree.Checksum) (ostree.Checksum, error)

// Prepare runs ps in order on target and returns the commit to deploy.
func (s *Sysroot) Prepare(ctx context.Context, base Deployment, target ostree.Checksum, ps []Preparer) (ostree.Checksum, error) {
	for _, p := range ps {
		next, err := p(ctx, s, base, target)
		if err != nil {
			return target, err
		}
		target = next
	}
	return target, nil
}

// UpgradeResult says what Upgrade found and did.
type UpgradeResult struct {
	Base     Deployment      // the deployment upgraded from
	Refspec  string          // the origin refspec followed
	Origin   OriginKind      // what Refspec is; only OriginRemote fetches
	Commit   ostree.Checksum // the commit the refspec names now
	Digest   string          // with OriginImage: the manifest digest the reference names now
	Version  string          // its version metadata, if any
	Changed  bool            // Commit differs from Base's commit
	Deployed *Deployment     // the new deployment; nil with Check or nothing new
}

// Upgrade follows the origin of the booted deployment (else the default
// one) of a stateroot, like `rpm-ostree upgrade`: it pulls the origin's
// refspec (REMOTE:REF through p; a plain REF is read from the sysroot
// repository, nothing is fetched) and deploys the commit it names if it
// differs from the base deployment's and is not already the pending
// default. res.Origin tells the caller which it was: an origin pinned to
// a commit (deployed by checksum) follows nothing, so the result is that
// commit, unchanged, and nothing is fetched.
func (s *Sysroot) Upgrade(ctx context.Context, p Puller, opts UpgradeOptions) (UpgradeResult, error) {
	base, ok := s.UpgradeBase(opts.OSName)
	if !ok {
		return UpgradeResult{}, fmt.Errorf("upgrading: no deployment of stateroot %q to upgrade from: %w", opts.OSName, errdefs.ErrNotFound)
	}
	res := UpgradeResult{Base: base, Refspec: base.Refspec, Origin: KindOf(base.Refspec)}
	if res.Origin == OriginCommit {
		res.Commit = base.Checksum
		if c, err := s.repo.ReadCommit(res.Commit); err == nil {
			res.Version = c.Version()
		}
		return res, nil
	}
	if res.Origin == OriginImage {
		return s.upgradeImage(ctx, opts, res)
	}
	remote, ref, err := ostree.ParseRefspec(base.Refspec)
	if err != nil {
		return res, fmt.Errorf("upgrading %s: origin: %w", base.Path(), err)
	}
	if remote != "" {
		if res.Commit, err = p.Pull(ctx, s.repo, remote, ref, opts.Check); err != nil {
			return res, fmt.Errorf("upgrading %s: pulling %s: %w", base.Path(), base.Refspec, err)
		}
	} else if res.Commit, err = s.repo.ResolveRev(ref); err != nil {
		return res, fmt.Errorf("upgrading %s: %w", base.Path(), err)
	}
	if c, err := s.repo.ReadCommit(res.Commit); err == nil {
		res.Version = c.Version()
	}
	// A layered deployment runs a commit derived from its base: what is
	// new is a base other than that one.
	baseCommit, err := s.BaseCommit(base)
	if err != nil {
		return res, fmt.Errorf("upgrading %s: %w", base.Path(), err)
	}
	res.Changed = res.Commit != baseCommit
	if !res.Changed || opts.Check {
		return res, nil
	}
	return s.deployUpgrade(ctx, opts, res)
}

// upgradeImage follows an image origin: the tag's manifest digest is
// compared with the one the base deployment came from, and only a new
// one is imported (the layers the repository has are not fetched again)
// and deployed, recording the new digest in the origin.
func (s *Sysroot) upgradeImage(ctx context.Context, opts UpgradeOptions, res UpgradeResult) (UpgradeResult, error) {
	base := res.Base
	if opts.Images == nil {
		return res, fmt.Errorf("upgrading %s: origin %s is a container image and no image puller is set: %w", base.Path(), base.Refspec, errdefs.ErrUnsupported)
	}
	commit, digest, err := opts.Images.PullImage(ctx, s.repo, base.Refspec, base.ImageDigest, opts.Check)
	if err != nil {
		return res, fmt.Errorf("upgrading %s: pulling %s: %w", base.Path(), base.Refspec, err)
	}
	res.Digest = digest
	if digest == base.ImageDigest {
		res.Commit = base.Checksum
	} else {
		res.Commit = commit
	}
	if c, err := s.repo.ReadCommit(res.Commit); err == nil {
		res.Version = c.Version()
	}
	res.Changed = digest != base.ImageDigest && res.Commit != base.Checksum
	if !res.Changed || opts.Check {
		return res, nil
	}
	return s.deployUpgrade(ctx, opts, res)
}

// deployUpgrade deploys res.Commit (prepared) as the base's successor,
// unless it is already the next boot's.
func (s *Sysroot) deployUpgrade(ctx context.Context, opts UpgradeOptions, res UpgradeResult) (UpgradeResult, error) {
	base := res.Base
	for _, d := range s.deployments {
		if d.OSName != base.OSName || (d.Index != 0 && !d.Staged) {
			continue
		}
		if c, err := s.BaseCommit(d); err == nil && c == res.Commit && sameLayering(d, base) {
			return res, nil // already the next boot's
		}
	}
	commit, err := s.Prepare(ctx, base, res.Commit, opts.Prepare)
	if err != nil {
		return res, fmt.Errorf("upgrading %s to %s: %w", base.Path(), res.Commit, err)
	}
	dopts := opts.Deploy
	dopts.Refspec, dopts.ImageDigest = base.Refspec, res.Digest
	dopts.Origin = UpgradeOrigin(base)
	d, err := s.Deploy(ctx, base.OSName, commit.String(), dopts)
	if err != nil {
		return res, err
	}
	res.Deployed = &d
	return res, nil
}

// UpgradeBase returns the deployment an upgrade of osname ("" for any) starts from
// and whose origin it follows: on a booted node the pending deployment of
// the booted stateroot, if there is one and it is not staged, else the
// booted one (rpm-ostree's "origin merge deployment": `rebase` then
// `upgrade` before a reboot follows the new origin); else the first
// non-staged deployment of osname.
func (s *Sysroot) UpgradeBase(osname string) (Deployment, bool) {
	if b, ok := s.Booted(); ok && (osname == "" || b.OSName == osname) {
		if p, ok := s.Pending(); ok && !p.Staged {
			return p, true
		}
		return b, true
	}
	for _, d := range s.deployments {
		if !d.Staged && (osname == "" || d.OSName == osname) {
			return d, true
		}
	}
	return Deployment{}, false
}

// sameLayering says whether a and b ask for the same layered packages.
func sameLayering(a, b Deployment) bool {
	la, lb := LayeringOf(a.Origin), LayeringOf(b.Origin)
	return slices.Equal(la.Requested, lb.Requested) && slices.Equal(la.RequestedLocal, lb.RequestedLocal) &&
		slices.Equal(la.Removed, lb.Removed)
}
