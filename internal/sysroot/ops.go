package sysroot

import (
	"context"
	"fmt"
	"slices"

	"github.com/strata-os/strata/internal/errdefs"
)

// deploymentAt returns the deployment at index of the loaded list.
func (s *Sysroot) deploymentAt(index int) (Deployment, error) {
	if index < 0 || index >= len(s.deployments) {
		return Deployment{}, fmt.Errorf("deployment index %d: the sysroot has %d deployments: %w", index, len(s.deployments), errdefs.ErrNotFound)
	}
	return s.deployments[index], nil
}

// UndeployOptions tune Undeploy.
type UndeployOptions struct {
	// Force removes a pinned deployment, or the last one that would boot.
	Force bool
}

// Undeploy removes the deployment at index from the list (a new boot
// version), then cleans up, like `ostree admin undeploy INDEX`. The
// booted deployment cannot be undeployed (errdefs.ErrFailedPrecondition);
// undeploying the staged one discards it. A pinned deployment, kept on
// purpose, and the last deployment that would boot (the sysroot would be
// left unbootable) are removed only with opts.Force; without it they are
// errdefs.ErrFailedPrecondition too. ostree admin undeploy removes both
// silently.
//
// Steps: those of WriteDeployments, then the cleanup ones.
func (s *Sysroot) Undeploy(ctx context.Context, index int, opts UndeployOptions) (Deployment, error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return Deployment{}, err
	}
	defer unlock()
	d, err := s.deploymentAt(index)
	if err != nil {
		return Deployment{}, err
	}
	if d.Booted {
		return Deployment{}, fmt.Errorf("undeploying %s: it is the booted deployment: %w", d.Path(), errdefs.ErrFailedPrecondition)
	}
	if !opts.Force && d.Pinned {
		return Deployment{}, fmt.Errorf("undeploying %s: it is pinned: %w", d.Path(), errdefs.ErrFailedPrecondition)
	}
	if !opts.Force && !d.Staged && len(s.nonStaged()) == 1 {
		return Deployment{}, fmt.Errorf("undeploying %s: it is the last deployment; the sysroot would have nothing to boot: %w", d.Path(), errdefs.ErrFailedPrecondition)
	}
	list := slices.Delete(slices.Clone(s.deployments), index, index+1)
	if err := s.writeDeployments(ctx, list); err != nil {
		return Deployment{}, err
	}
	_, err = s.cleanup(ctx, true)
	return d, err
}

// Rollback makes the rollback deployment the default, with rpm-ostree's
// meaning (docs/formats/sysroot.md): if the default is the booted
// deployment, the one after it becomes the default; otherwise the booted
// deployment becomes the default again. With nothing booted, deployments
// 0 and 1 trade places. A staged deployment is discarded. Fewer than two
// deployments is errdefs.ErrFailedPrecondition.
//
// Steps: those of WriteDeployments, then the cleanup ones.
func (s *Sysroot) Rollback(ctx context.Context) (Deployment, error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return Deployment{}, err
	}
	defer unlock()
	list := s.nonStaged()
	if len(list) < 2 {
		return Deployment{}, fmt.Errorf("rolling back: %d deployments, need 2: %w", len(list), errdefs.ErrFailedPrecondition)
	}
	target := 1
	if b, ok := s.Booted(); ok && !list[0].same(b) {
		target = slices.IndexFunc(list, b.same)
	}
	d := list[target]
	list = slices.Delete(list, target, target+1)
	list = slices.Insert(list, 0, d)
	if err := s.writeDeployments(ctx, list); err != nil {
		return Deployment{}, err
	}
	_, err = s.cleanup(ctx, true)
	out, _ := s.find(d)
	return out, err
}

// SetPinned pins or unpins the deployment at index: [libostree-transient]
// pinned=true in its origin (ostree_sysroot_deployment_set_pinned). A
// pinned deployment is kept by Deploy and Cleanup. The boot configuration
// does not change. A staged deployment cannot be pinned
// (errdefs.ErrFailedPrecondition).
//
// Steps: "origin".
func (s *Sysroot) SetPinned(ctx context.Context, index int, pinned bool) (Deployment, error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return Deployment{}, err
	}
	defer unlock()
	d, err := s.deploymentAt(index)
	if err != nil {
		return Deployment{}, err
	}
	if d.Pinned == pinned {
		return d, nil
	}
	if d.Staged {
		return Deployment{}, fmt.Errorf("pinning %s: it is staged: %w", d.Path(), errdefs.ErrFailedPrecondition)
	}
	d.Origin = cloneOrigin(d.Origin)
	if d.Origin == nil {
		d.Origin = NewOrigin(d.Checksum.String())
		d.Origin.Delete(originGroup, "")
	}
	if pinned {
		d.Origin.Set(transientGroup, "pinned", "true")
	} else {
		d.Origin.Delete(transientGroup, "pinned")
	}
	if err := s.writeOrigin(d, true); err != nil {
		return Deployment{}, err
	}
	if err := s.step(ctx, "origin"); err != nil {
		return Deployment{}, err
	}
	if err := bumpMtime(s.path); err != nil {
		return Deployment{}, err
	}
	if err := s.load(); err != nil {
		return Deployment{}, err
	}
	out, _ := s.find(d)
	return out, nil
}

// SetKargs replaces the kernel arguments (without ostree=) of the
// deployment at index: a new boot version written atomically
// (ostree_sysroot_deployment_set_kargs), then cleanup. ostree= goes at
// the end of the new list, as `ostree admin instutil set-kargs` puts it;
// EditKargsAt edits the list in place instead. For the staged deployment
// only its record changes.
//
// Steps: those of WriteDeployments, then the cleanup ones; "staged" for
// the staged deployment.
func (s *Sysroot) SetKargs(ctx context.Context, index int, kargs []string) (Deployment, error) {
	return s.setKargs(ctx, index, func(Deployment) ([]string, int, error) {
		return slices.Clone(kargs), -1, nil
	})
}

// EditKargsAt applies e (see EditKargs) to the kernel arguments of the
// deployment at index as `ostree admin instutil set-kargs --merge` and
// rpm-ostree kargs do, on the whole options line: ostree= keeps its
// place, appended arguments follow it. Then as SetKargs.
func (s *Sysroot) EditKargsAt(ctx context.Context, index int, e KargsEdit) (Deployment, error) {
	return s.setKargs(ctx, index, func(d Deployment) ([]string, int, error) {
		return editKargsInPlace(d.Kargs, d.ostreePos, e)
	})
}

// setKargs gives the deployment at index the kernel arguments and ostree=
// position that newKargs computes from it.
func (s *Sysroot) setKargs(ctx context.Context, index int, newKargs func(Deployment) ([]string, int, error)) (Deployment, error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return Deployment{}, err
	}
	defer unlock()
	d, err := s.deploymentAt(index)
	if err != nil {
		return Deployment{}, err
	}
	kargs, pos, err := newKargs(d)
	if err != nil {
		return Deployment{}, err
	}
	if err := validateKargs(kargs); err != nil {
		return Deployment{}, err
	}
	if d.Staged {
		rec := *s.staged
		rec.Kargs = kargs
		if err := s.writeStagedRecord(rec); err != nil {
			return Deployment{}, err
		}
		if err := s.step(ctx, "staged"); err != nil {
			return Deployment{}, err
		}
		if err := s.load(); err != nil {
			return Deployment{}, err
		}
		out, _ := s.find(d)
		return out, nil
	}
	list := slices.Clone(s.deployments)
	list[index].Kargs, list[index].ostreePos = kargs, pos
	if err := s.writeDeployments(ctx, list); err != nil {
		return Deployment{}, err
	}
	if _, err := s.cleanup(ctx, true); err != nil {
		return Deployment{}, err
	}
	out, _ := s.find(d)
	return out, nil
}
