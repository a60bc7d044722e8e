package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// DeployOptions tune Deploy.
type DeployOptions struct {
	// Kargs are the kernel arguments of the new deployment (without
	// ostree=). nil inherits those of the merge deployment, where ostree=
	// keeps its place; no merge deployment means none.
	Kargs []string
	// Refspec is written to the origin ([origin] refspec=). "" means what
	// rev names: its remote ref if it came from a remote, else the local
	// ref, else the full commit checksum (see DeployRefspec).
	Refspec string
	// ImageDigest, with a Refspec that is a container image reference,
	// records the manifest digest of the image the commit came from.
	ImageDigest string
	// Origin, if set, is the whole origin file written (its refspec or
	// baserefspec wins over Refspec): an upgrade carries the node's
	// layered packages and other records over with UpgradeOrigin.
	Origin *keyfile.File
	// Stage checks the deployment out and records it as staged; Finalize
	// (at shutdown) merges /etc and writes it into the boot
	// configuration.
	Stage bool
	// LockFinalization, with Stage, keeps Finalize from taking the staged
	// deployment until UnlockStaged (rpm-ostree deploy --lock-finalization).
	LockFinalization bool
	// Progress, if set, follows the checkout (see repo.CheckoutOptions).
	Progress interface {
		SetTotal(n int64)
		Add(n int64)
	}
}

// Deploy deploys rev (a ref or checksum of the sysroot repository) in the
// stateroot osname, as `ostree admin deploy` does (docs/formats/sysroot.md):
//
//  1. a prepare-cleanup removes leftovers of interrupted operations, so a
//     deploy re-run after a crash converges on the same serial;
//  2. the commit is checked out by hardlinks into
//     ostree/deploy/OS/deploy/CHECKSUM.SERIAL (SERIAL = 1 + the highest
//     serial of that checksum in the stateroot, else 0);
//  3. its kernel (usr/lib/modules/KVER/vmlinuz) gives the boot checksum;
//  4. /etc: a tree with both etc and usr/etc, or with usr, usr/etc or
//     etc as a symlink, is refused; a lone etc is renamed usr/etc;
//     usr/etc is copied to etc;
//  5. /etc is three-way merged from the merge deployment (MergeEtc);
//     etc/.updated is removed so that ConditionNeedsUpdate units run;
//  6. the origin is written and the deployment root made immutable;
//  7. the new list is [new] + the pinned, other-stateroot, booted and
//     merge deployments (the others of the stateroot are dropped), written
//     with WriteDeployments, then Cleanup's sweep and prune.
//
// With opts.Stage, steps 5–7 wait for Finalize and the deployment is
// recorded as staged. Nothing under the stateroot's var is ever touched.
//
// Bad input changes nothing: an unknown revision is errdefs.ErrNotFound,
// a corrupt commit errdefs.ErrCorrupt, a commit without a kernel, with
// both etc and usr/etc, with a symlink at usr, usr/etc, etc or on the way
// to its kernel files, or with a control character in its version
// errdefs.ErrInvalid (as is such a refspec), an uninitialized stateroot
// errdefs.ErrNotFound; the partial deployment directory is removed and
// the old default still boots.
//
// Steps: "prepare-cleanup" (and the cleanup steps but "prune" before
// it), "checkout", "kernel", "etc", "etc-merge", "origin", "immutable",
// then "staged" when staging, or the WriteDeployments and cleanup steps.
func (s *Sysroot) Deploy(ctx context.Context, osname, rev string, opts DeployOptions) (_ Deployment, err error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return Deployment{}, err
	}
	defer unlock()
	if err := validateOSName(osname); err != nil {
		return Deployment{}, err
	}
	if fi, err := os.Stat(s.abs("ostree/deploy/" + osname + "/var")); err != nil || !fi.IsDir() {
		return Deployment{}, fmt.Errorf("deploying %s: stateroot %q is not initialized (no ostree/deploy/%s/var): %w", rev, osname, osname, errdefs.ErrNotFound)
	}
	if opts.Kargs != nil {
		if err := validateKargs(opts.Kargs); err != nil {
			return Deployment{}, err
		}
	}
	csum, err := s.repo.ResolveRev(rev)
	if err != nil {
		return Deployment{}, fmt.Errorf("deploying %s: %w", rev, err)
	}
	commit, err := s.repo.ReadCommit(csum)
	if err != nil {
		return Deployment{}, fmt.Errorf("deploying %s: %w", rev, err)
	}
	if v := commit.Version(); hasControl(v) {
		return Deployment{}, fmt.Errorf("deploying commit %s: its version %q holds a control character: %w", csum, v, errdefs.ErrInvalid)
	}
	refspec := opts.Refspec
	if opts.Origin != nil {
		refspec = originRefspec(opts.Origin)
	}
	if hasControl(refspec) || hasControl(opts.ImageDigest) {
		return Deployment{}, fmt.Errorf("deploying %s: refspec %q or image digest %q holds a control character: %w", rev, refspec, opts.ImageDigest, errdefs.ErrInvalid)
	}
	if refspec == "" {
		refspec = s.DeployRefspec(rev, csum)
	}
	var merge *Deployment
	if m, ok := s.MergeDeployment(osname); ok {
		merge = &m
	}

	if _, err := s.cleanup(ctx, false); err != nil {
		return Deployment{}, fmt.Errorf("deploying %s: initial cleanup: %w", rev, err)
	}
	if err := s.step(ctx, "prepare-cleanup"); err != nil {
		return Deployment{}, err
	}

	serial, err := s.allocateSerial(osname, csum)
	if err != nil {
		return Deployment{}, err
	}
	origin := NewOrigin(refspec)
	if IsImageReference(refspec) {
		origin = NewImageOrigin(refspec, opts.ImageDigest)
	}
	if opts.Origin != nil {
		origin = cloneOrigin(opts.Origin)
		if opts.ImageDigest != "" {
			origin.Set(imageGroup, "manifest-digest", opts.ImageDigest)
		}
	}
	nd := Deployment{OSName: osname, Checksum: csum, Serial: serial, Refspec: refspec, ImageDigest: opts.ImageDigest,
		Origin: origin, Pinned: originPinned(origin), Version: commit.Version(), Timestamp: commit.Time(), ostreePos: -1}
	if opts.Stage {
		nd.Staged = true
	}
	root := s.abs(nd.Path())
	committed := false
	defer func() {
		if err != nil && !committed && !s.crashed {
			err = errors.Join(err, s.removeDeploymentDir(nd))
		}
	}()
	if err := os.MkdirAll(filepath.Dir(root), 0o755); err != nil {
		return Deployment{}, fmt.Errorf("deploying %s: %w", rev, err)
	}
	if err := removeAll(root); err != nil {
		return Deployment{}, err
	}
	donor := s.takeDonor()
	_, err = repo.Checkout(ctx, s.repo, csum.String(), root, repo.CheckoutOptions{NoVerifyLinks: true, Progress: opts.Progress, Donor: donor})
	if rerr := removeDonor(donor); err == nil && rerr != nil {
		err = rerr
	}
	if err != nil {
		return Deployment{}, fmt.Errorf("deploying %s: %w", rev, err)
	}
	if err := s.step(ctx, "checkout"); err != nil {
		return Deployment{}, err
	}
	if err := checkTreeDirs(root); err != nil {
		return Deployment{}, fmt.Errorf("deploying commit %s: %w", csum, err)
	}
	k, err := findKernel(root)
	if err != nil {
		if errors.Is(err, errdefs.ErrNotFound) {
			return Deployment{}, fmt.Errorf("deploying commit %s: %w: %w", csum, err, errdefs.ErrInvalid)
		}
		return Deployment{}, fmt.Errorf("deploying commit %s: %w", csum, err)
	}
	nd.BootChecksum = k.bootcsum
	if err := s.step(ctx, "kernel"); err != nil {
		return Deployment{}, err
	}
	if err := prepareEtc(root); err != nil {
		return Deployment{}, fmt.Errorf("deploying commit %s: %w", csum, err)
	}
	if err := s.step(ctx, "etc"); err != nil {
		return Deployment{}, err
	}
	if opts.Kargs != nil {
		nd.Kargs = append([]string{}, opts.Kargs...)
		if merge != nil {
			nd.ostreePos = editedOstreePos(merge.Kargs, merge.ostreePos, nd.Kargs)
		}
	}
	if opts.Stage {
		if err := s.writeOrigin(nd, false); err != nil {
			return Deployment{}, err
		}
		if err := s.step(ctx, "origin"); err != nil {
			return Deployment{}, err
		}
		return s.stage(ctx, nd, merge, opts.Kargs, opts.LockFinalization, &committed)
	}
	if err := s.finishDeployment(ctx, &nd, merge); err != nil {
		return Deployment{}, err
	}
	list := s.simpleList(nd, merge)
	if err := s.writeDeployments(ctx, list); err != nil {
		committed = s.references(nd)
		return Deployment{}, err
	}
	committed = true
	if _, err := s.cleanup(ctx, true); err != nil {
		return Deployment{}, err
	}
	out, _ := s.find(nd)
	return out, nil
}

// stage records nd as the staged deployment, replacing an earlier one.
func (s *Sysroot) stage(ctx context.Context, nd Deployment, merge *Deployment, kargs []string, lockFinalization bool, committed *bool) (Deployment, error) {
	rec := stagedRecord{Target: refOf(nd), Kargs: kargs, Locked: lockFinalization}
	if merge != nil {
		rec.Merge = new(refOf(*merge))
	}
	old, hadOld := s.Staged()
	if err := fsutil.SyncFS(s.abs("ostree")); err != nil {
		return Deployment{}, err
	}
	if err := s.writeStagedRecord(rec); err != nil {
		return Deployment{}, err
	}
	*committed = true
	if err := s.step(ctx, "staged"); err != nil {
		return Deployment{}, err
	}
	if hadOld && !old.same(nd) {
		if err := s.removeDeploymentDir(old); err != nil {
			return Deployment{}, err
		}
	}
	if err := bumpMtime(s.path); err != nil {
		return Deployment{}, err
	}
	if err := s.load(); err != nil {
		return Deployment{}, err
	}
	if _, err := s.cleanup(ctx, false); err != nil {
		return Deployment{}, err
	}
	out, _ := s.find(nd)
	return out, nil
}

// finishDeployment is sysroot_finalize_deployment: kernel arguments from
// the merge deployment if unset, the /etc merge, the origin, the seal.
func (s *Sysroot) finishDeployment(ctx context.Context, nd *Deployment, merge *Deployment) error {
	root := s.abs(nd.Path())
	if merge != nil {
		if nd.Kargs == nil {
			nd.Kargs, nd.ostreePos = merge.Kargs, merge.ostreePos
		}
		if err := mergeDeploymentEtc(s.abs(merge.Path()), root); err != nil {
			return fmt.Errorf("merging /etc of %s into %s: %w", merge.Path(), nd.Path(), err)
		}
	}
	if err := os.Remove(filepath.Join(root, "etc/.updated")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing etc/.updated: %w", err)
	}
	if err := s.step(ctx, "etc-merge"); err != nil {
		return err
	}
	if err := s.writeOrigin(*nd, false); err != nil {
		return err
	}
	if err := s.step(ctx, "origin"); err != nil {
		return err
	}
	if err := setImmutable(root, true); err != nil {
		return fmt.Errorf("sealing %s: %w", nd.Path(), err)
	}
	return s.step(ctx, "immutable")
}

// writeOrigin writes d.Origin; sync makes it durable at once (pin), else
// the switch's syncfs does.
func (s *Sysroot) writeOrigin(d Deployment, sync bool) error {
	if d.Origin == nil {
		return nil
	}
	p := s.abs(d.OriginPath())
	var err error
	if sync {
		err = fsutil.WriteFileAtomic(p, d.Origin.Bytes(), 0o644)
	} else {
		err = writeFileNoSync(p, d.Origin.Bytes(), 0o644)
	}
	if err != nil {
		return fmt.Errorf("writing origin %s: %w", d.OriginPath(), err)
	}
	return nil
}

// allocateSerial returns 1 + the highest serial of csum among the
// deployment directories of osname, else 0 (allocate_deployserial).
func (s *Sysroot) allocateSerial(osname string, csum ostree.Checksum) (int, error) {
	ents, err := os.ReadDir(s.abs("ostree/deploy/" + osname + "/deploy"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("allocating deploy serial: %w", err)
	}
	serial := 0
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, n, err := parseDeployName(e.Name())
		if err == nil && c == csum && n+1 > serial {
			serial = n + 1
		}
	}
	return serial, nil
}

// prepareEtc makes the deployment's etc from usr/etc (prepare_deployment_etc).
// A tree whose usr, usr/etc or etc is a symlink is refused: the copy and
// the /etc merge would write where it points.
func prepareEtc(root string) error {
	if err := checkTreeDirs(root); err != nil {
		return err
	}
	_, errEtc := os.Lstat(filepath.Join(root, "etc"))
	_, errUsrEtc := os.Lstat(filepath.Join(root, "usr/etc"))
	if errEtc == nil {
		if errUsrEtc == nil {
			return fmt.Errorf("tree contains both /etc and /usr/etc: %w", errdefs.ErrInvalid)
		}
		if err := os.Rename(filepath.Join(root, "etc"), filepath.Join(root, "usr/etc")); err != nil {
			return fmt.Errorf("moving etc to usr/etc: %w", err)
		}
		errUsrEtc = nil
	}
	if errUsrEtc != nil {
		return nil
	}
	if err := copyTree(filepath.Join(root, "usr/etc"), filepath.Join(root, "etc")); err != nil {
		return fmt.Errorf("copying usr/etc to etc: %w", err)
	}
	return nil
}

// simpleList is the new deployment list of ostree_sysroot_simple_write_deployment
// with default flags: nd first, then the pinned deployments, those of
// other stateroots, and the booted and merge deployments.
func (s *Sysroot) simpleList(nd Deployment, merge *Deployment) []Deployment {
	list := []Deployment{nd}
	for _, d := range s.deployments {
		if d.same(nd) {
			continue
		}
		isMerge := merge != nil && d.same(*merge)
		if d.Pinned || d.OSName != nd.OSName || d.Booted || isMerge {
			list = append(list, d)
		}
	}
	return list
}

// references reports whether the boot configuration on disk lists d; if
// it cannot be read, it answers true, so that no caller deletes what may
// be in use.
func (s *Sysroot) references(d Deployment) bool {
	if err := s.load(); err != nil {
		return true
	}
	_, ok := s.find(d)
	return ok
}
