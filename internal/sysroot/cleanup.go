package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// CleanupStats reports what Cleanup removed.
type CleanupStats struct {
	Undeployed  []string // deployments dropped from the list (Path)
	Deployments []string // deployment directories deleted (Path)
	BootDirs    []string // boot/ostree/OS-BOOTCSUM directories deleted
	Prune       repo.PruneStats
}

// Cleanup keeps the booted, pending, rollback and pinned deployments (and
// those of other stateroots; with nothing booted: indexes 0 and 1 and the
// pinned ones) and undeploys the others in one switch (WriteDeployments),
// then sweeps what no entry references, as `ostree admin cleanup` does
// (docs/formats/sysroot.md): the other boot version's loader.N and symlink farms,
// deployment directories (immutable attribute cleared first) and their
// origins, boot/ostree directories, then rewrites the deployment refs
// ostree/B/S/I and prunes the repository to what refs reach (depth 0).
//
// Steps: those of WriteDeployments when something is undeployed, then
// "bootversions", "deployments", "bootdirs", "refs", "prune".
func (s *Sysroot) Cleanup(ctx context.Context) (CleanupStats, error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return CleanupStats{}, err
	}
	defer unlock()
	var st CleanupStats
	keep := s.keepList()
	if len(keep) < len(s.deployments) {
		for _, d := range s.deployments {
			if !containsDeployment(keep, d) {
				st.Undeployed = append(st.Undeployed, d.Path())
			}
		}
		if err := s.writeDeployments(ctx, keep); err != nil {
			return st, err
		}
	}
	sw, err := s.cleanup(ctx, true)
	sw.Undeployed = st.Undeployed
	return sw, err
}

func containsDeployment(list []Deployment, d Deployment) bool {
	for _, x := range list {
		if x.same(d) {
			return true
		}
	}
	return false
}

// keepList is the list Cleanup keeps.
func (s *Sysroot) keepList() []Deployment {
	p, r := s.pendingRollback()
	b, booted := s.Booted()
	var out []Deployment
	for i, d := range s.deployments {
		keep := d.Pinned || i == p || i == r || d.Booted
		if booted && d.OSName != b.OSName {
			keep = true
		}
		if !booted && i == 0 {
			keep = true
		}
		if keep {
			out = append(out, d)
		}
	}
	return out
}

// cleanup sweeps what the loaded state does not reference
// (_ostree_sysroot_cleanup_internal); prune also prunes the repository.
func (s *Sysroot) cleanup(ctx context.Context, prune bool) (CleanupStats, error) {
	var st CleanupStats
	if err := s.cleanupOtherBootversions(); err != nil {
		return st, err
	}
	if err := s.step(ctx, "bootversions"); err != nil {
		return st, err
	}
	removed, err := s.cleanupDeployments()
	st.Deployments = removed
	if err != nil {
		return st, err
	}
	if err := s.step(ctx, "deployments"); err != nil {
		return st, err
	}
	if st.BootDirs, err = s.cleanupBootDirs(); err != nil {
		return st, err
	}
	if err := s.step(ctx, "bootdirs"); err != nil {
		return st, err
	}
	if err := s.writeDeploymentRefs(); err != nil {
		return st, err
	}
	if err := s.step(ctx, "refs"); err != nil {
		return st, err
	}
	if !prune {
		return st, nil
	}
	ps, err := repo.Prune(ctx, s.repo, repo.PruneOptions{Depth: 0})
	st.Prune = ps
	if err != nil {
		return st, fmt.Errorf("pruning the sysroot repository: %w", err)
	}
	return st, s.step(ctx, "prune")
}

// cleanupOtherBootversions removes boot/loader.(1-B), ostree/boot.(1-B)
// and its farms, ostree/boot.B.(1-S), and the stale boot/loader.tmp,
// ostree/boot.N.tmp links and staged-record temporaries that a crash
// inside an atomic replace leaves.
func (s *Sysroot) cleanupOtherBootversions() error {
	ob, os_ := 1-s.bootversion, 1-s.subbootversion
	paths := []string{
		fmt.Sprintf("boot/loader.%d", ob),
		fmt.Sprintf("ostree/boot.%d", ob),
		fmt.Sprintf("ostree/boot.%d.0", ob),
		fmt.Sprintf("ostree/boot.%d.1", ob),
		fmt.Sprintf("ostree/boot.%d.%d", s.bootversion, os_),
		"boot/loader.tmp",
		"ostree/boot.0.tmp",
		"ostree/boot.1.tmp",
	}
	for _, p := range paths {
		if err := os.RemoveAll(s.abs(p)); err != nil {
			return fmt.Errorf("cleaning up boot versions: %w", err)
		}
	}
	temps, _ := filepath.Glob(filepath.Join(filepath.Dir(s.opts.stagedPath), "."+filepath.Base(s.opts.stagedPath)+".tmp-*"))
	for _, p := range temps {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("cleaning up staged record temporaries: %w", err)
		}
	}
	return nil
}

// cleanupDeployments deletes every deployment directory (and origin) that
// no loaded deployment is, never the booted root (cleanup_old_deployments).
// A directory whose name is not CHECKSUM.SERIAL is errdefs.ErrCorrupt.
func (s *Sysroot) cleanupDeployments() ([]string, error) {
	active := map[string]bool{}
	for _, d := range s.deployments {
		active[d.Path()] = true
	}
	oses, err := os.ReadDir(s.abs("ostree/deploy"))
	if err != nil {
		return nil, fmt.Errorf("cleaning up deployments: %w", err)
	}
	var removed []string
	for _, o := range oses {
		if !o.IsDir() {
			continue
		}
		dir := s.abs("ostree/deploy/" + o.Name() + "/deploy")
		ents, err := os.ReadDir(dir)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return removed, fmt.Errorf("cleaning up deployments: %w", err)
		}
		for _, e := range ents {
			if !e.IsDir() {
				// An origin write a crash interrupted (writeOrigin).
				if n := e.Name(); strings.HasPrefix(n, ".") && (strings.HasSuffix(n, ".origin.tmp") || strings.Contains(n, ".origin.tmp-")) {
					if err := os.Remove(filepath.Join(dir, n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return removed, fmt.Errorf("cleaning up deployments: %w", err)
					}
				}
				continue
			}
			csum, serial, err := parseDeployName(e.Name())
			if err != nil {
				// Refused, not skipped, as libostree does ("Invalid
				// deploy name"): a sysroot holding it was not made
				// by either tool, and deploying on it would hide that.
				return removed, fmt.Errorf("cleaning up deployments: %s: %w", filepath.Join("ostree/deploy", o.Name(), "deploy", e.Name()), err)
			}
			d := Deployment{OSName: o.Name(), Checksum: csum, Serial: serial}
			if active[d.Path()] {
				continue
			}
			if s.isRunningRoot(d) {
				continue
			}
			if err := s.removeDeploymentDir(d); err != nil {
				return removed, err
			}
			removed = append(removed, d.Path())
		}
	}
	return removed, nil
}

// isRunningRoot reports whether d's directory is "/" of this process
// (the last guard libostree keeps before deleting a deployment).
func (s *Sysroot) isRunningRoot(d Deployment) bool {
	a, err1 := os.Stat("/")
	b, err2 := os.Stat(s.abs(d.Path()))
	return err1 == nil && err2 == nil && os.SameFile(a, b)
}

// removeDeploymentDir deletes a deployment: its origin first, then the
// directory with its immutable attribute cleared (_ostree_sysroot_rmrf_deployment).
func (s *Sysroot) removeDeploymentDir(d Deployment) error {
	if err := os.Remove(s.abs(d.OriginPath())); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing origin %s: %w", d.OriginPath(), err)
	}
	return removeAll(s.abs(d.Path()))
}

// cleanupBootDirs deletes boot/ostree/OS-BOOTCSUM directories whose boot
// checksum no deployment uses.
func (s *Sysroot) cleanupBootDirs() ([]string, error) {
	active := map[string]bool{}
	for _, d := range s.deployments {
		active[d.BootChecksum] = true
	}
	ents, err := os.ReadDir(s.abs("boot/ostree"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cleaning up boot directories: %w", err)
	}
	var removed []string
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		i := strings.LastIndexByte(e.Name(), '-')
		if i < 0 || !ostree.IsChecksum(e.Name()[i+1:]) || active[e.Name()[i+1:]] {
			continue
		}
		p := filepath.Join("boot/ostree", e.Name())
		if err := os.RemoveAll(s.abs(p)); err != nil {
			return removed, fmt.Errorf("cleaning up boot directories: %w", err)
		}
		removed = append(removed, p)
	}
	return removed, nil
}

// writeDeploymentRefs makes the refs ostree/B/S/I name the deployments'
// commits and removes those of other (sub)boot versions
// (generate_deployment_refs), so that a prune keeps every deployed commit.
// The base commit of each layered deployment (the parent of its derived
// commit, which the prune's depth of 0 would not keep) gets a ref
// rpmostree/base/N as rpm-ostree names them: an upgrade compares against it,
// status shows its version, and a later deployment of it needs no download.
func (s *Sysroot) writeDeploymentRefs() error {
	refs, err := s.repo.ListRefs()
	if err != nil {
		return fmt.Errorf("writing deployment refs: %w", err)
	}
	keep := map[string]ostree.Checksum{}
	var bases []ostree.Checksum
	for i, d := range s.deployments {
		keep[fmt.Sprintf("ostree/%d/%d/%d", s.bootversion, s.subbootversion, i)] = d.Checksum
		// A base that cannot be read has nothing to keep.
		if b, err := s.BaseCommit(d); err == nil && b != d.Checksum && !slices.Contains(bases, b) {
			bases = append(bases, b)
		}
	}
	for i, b := range bases {
		keep[fmt.Sprintf("rpmostree/base/%d", i)] = b
	}
	for _, r := range refs {
		if r.Remote != "" || !(isDeploymentRef(r.Name) || isBaseRef(r.Name)) {
			continue
		}
		if c, ok := keep[r.Name]; ok && c == r.Checksum {
			delete(keep, r.Name)
			continue
		}
		if _, ok := keep[r.Name]; ok {
			continue
		}
		if err := s.repo.DeleteRef("", r.Name); err != nil {
			return fmt.Errorf("writing deployment refs: %w", err)
		}
	}
	for name, c := range keep {
		if err := s.repo.SetRef("", name, c); err != nil {
			return fmt.Errorf("writing deployment refs: %w", err)
		}
	}
	return nil
}

// isBaseRef matches rpmostree/base/N.
func isBaseRef(name string) bool {
	n, ok := strings.CutPrefix(name, "rpmostree/base/")
	return ok && n != "" && strings.Trim(n, "0123456789") == ""
}

// isDeploymentRef matches ostree/[01]/[01]/N.
func isDeploymentRef(name string) bool {
	p := strings.Split(name, "/")
	if len(p) != 4 || p[0] != "ostree" || (p[1] != "0" && p[1] != "1") || (p[2] != "0" && p[2] != "1") || p[3] == "" {
		return false
	}
	return strings.Trim(p[3], "0123456789") == ""
}
