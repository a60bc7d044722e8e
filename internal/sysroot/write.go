package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"golang.org/x/sys/unix"
)

// WriteDeployments makes list the deployment list, atomically, then
// cleans up (Cleanup's sweep, repository prune included). list holds
// deployments of this sysroot (from Deployments, Deploy...); the first
// is the new default. A staged deployment is kept only if it is first in
// list; otherwise it is discarded. The booted deployment cannot be left
// out (errdefs.ErrFailedPrecondition).
//
// The switch (write_deployments_with_options, docs/formats/sysroot.md) has exactly one
// commit point. If the new list differs from the current one only in
// which deployment directories the entries point to (same length and,
// index by index, the same boot checksum, kernel arguments and commit
// version), the BLS entries stay and a new symlink farm
// ostree/boot.B.(1-S) is written and swapped in: the commit point is the
// rename of ostree/boot.B. Otherwise the other boot version N is written
// in full (kernels into boot/ostree/OS-BOOTCSUM, one BLS entry per
// deployment into boot/loader.N/entries, the farm ostree/boot.N.M, the
// boot/loader.tmp -> loader.N link), everything is synced, and the
// commit point is the rename of boot/loader.tmp over boot/loader,
// followed by an fsync of boot/. A crash before it leaves the old
// configuration in force; what was written is removed by the next
// cleanup.
//
// Syncing is syncfs(2) of the sysroot's filesystem and, if /boot is
// another filesystem, of that one. Unlike libostree, strata does not
// FIFREEZE/FITHAW /boot: strata targets systemd-boot, which reads the
// entries from the ESP after the switch (so no journal-blind GRUB reads
// an XFS /boot), and freezing is what makes `ostree admin` hang or
// damage the host when its /boot is not a throwaway filesystem in
// tests. Nor does it run a global sync(2).
//
// Steps: "entries" (kernels and BLS entries written), "bootlinks" (the
// new farm and ostree/boot.N link), "loader-link" (boot/loader.tmp),
// "synced", "committed", "reloaded"; in the no-bootversion-change case
// only "bootlinks", "synced", "committed", "reloaded". Then the cleanup
// steps.
func (s *Sysroot) WriteDeployments(ctx context.Context, list []Deployment) error {
	unlock, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	cur := make([]Deployment, 0, len(list))
	for _, d := range list {
		x, ok := s.find(d)
		if !ok {
			return fmt.Errorf("writing deployments: %s is not a deployment of %s: %w", d.Path(), s.path, errdefs.ErrNotFound)
		}
		x.Kargs, x.ostreePos = d.Kargs, d.ostreePos
		cur = append(cur, x)
	}
	if err := s.writeDeployments(ctx, cur); err != nil {
		return err
	}
	_, err = s.cleanup(ctx, true)
	return err
}

// writeDeployments is WriteDeployments under the lock, without the
// cleanup; the state is reloaded after the commit point, then the boot
// loader (WithBootloader) is synced.
func (s *Sysroot) writeDeployments(ctx context.Context, list []Deployment) error {
	if err := s.switchDeployments(ctx, list); err != nil {
		return err
	}
	return s.syncBootloader(ctx)
}

func (s *Sysroot) switchDeployments(ctx context.Context, list []Deployment) error {
	staged, hasStaged := s.Staged()
	keepStaged := hasStaged && len(list) > 0 && list[0].same(staged) && list[0].Staged
	var nl []Deployment
	for _, d := range list {
		if !d.Staged {
			nl = append(nl, d)
		}
	}
	removedStaged := false
	if hasStaged && !keepStaged {
		if err := s.removeStagedRecord(); err != nil {
			return err
		}
		if !slices.ContainsFunc(nl, staged.same) {
			if err := s.removeDeploymentDir(staged); err != nil {
				return err
			}
		}
		removedStaged = true
	}
	booted, hasBooted := s.Booted()
	for i := range nl {
		if fi, err := os.Stat(s.abs(nl[i].Path())); err != nil || !fi.IsDir() {
			return fmt.Errorf("writing deployments: deployment root %s is missing: %w", nl[i].Path(), errdefs.ErrNotFound)
		}
		if nl[i].BootChecksum == "" {
			k, err := findKernel(s.abs(nl[i].Path()))
			if err != nil {
				return fmt.Errorf("deployment %s: %w", nl[i].Path(), err)
			}
			nl[i].BootChecksum = k.bootcsum
		}
	}
	if hasBooted && !slices.ContainsFunc(nl, booted.same) {
		return fmt.Errorf("writing deployments: the list leaves out the booted deployment %s: %w", booted.Path(), errdefs.ErrFailedPrecondition)
	}
	assignBootserials(nl)
	for i := range nl {
		nl[i].Index = i
	}
	cur := s.nonStaged()
	newBootversion := len(nl) != len(cur)
	noop := !newBootversion
	for i := 0; !newBootversion && i < len(nl); i++ {
		if !bootconfigsEqual(cur[i], nl[i]) {
			newBootversion, noop = true, false
			break
		}
		if !cur[i].same(nl[i]) {
			noop = false
		}
	}
	if noop {
		if removedStaged {
			return s.finishWrite(ctx)
		}
		return nil
	}
	if newBootversion {
		if err := s.writeNewBootversion(ctx, nl); err != nil {
			return err
		}
	} else if err := s.swapSubbootversion(ctx, nl); err != nil {
		return err
	}
	return s.finishWrite(ctx)
}

// finishWrite bumps the mtime of ostree/deploy, reloads and removes the
// legacy ostree/deploy/OS/current links (write_deployments_finish).
func (s *Sysroot) finishWrite(ctx context.Context) error {
	if err := bumpMtime(s.path); err != nil {
		return err
	}
	if err := s.load(); err != nil {
		return fmt.Errorf("reloading deployments after the switch: %w", err)
	}
	for _, d := range s.deployments {
		p := s.abs("ostree/deploy/" + d.OSName + "/current")
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing legacy %s: %w", p, err)
		}
	}
	return s.step(ctx, "reloaded")
}

// assignBootserials numbers the deployments sharing a boot checksum, in
// list order (assign_bootserials).
func assignBootserials(ds []Deployment) {
	n := map[string]int{}
	for i := range ds {
		ds[i].BootSerial = n[ds[i].BootChecksum]
		n[ds[i].BootChecksum]++
	}
}

// bootconfigsEqual is deployment_bootconfigs_equal: same kernel, same
// kernel arguments (ostree= aside), same commit version.
func bootconfigsEqual(a, b Deployment) bool {
	return a.BootChecksum == b.BootChecksum &&
		strings.Join(a.optionWords(), " ") == strings.Join(b.optionWords(), " ") &&
		a.Version == b.Version
}

// swapSubbootversion writes ostree/boot.B.(1-S) and swaps ostree/boot.B
// to it: the BLS entries of boot version B then resolve to the new list.
func (s *Sysroot) swapSubbootversion(ctx context.Context, nl []Deployment) (err error) {
	bv := s.bootversion
	newSub := 1 - s.subbootversion
	farm := s.abs(fmt.Sprintf("ostree/boot.%d.%d", bv, newSub))
	committed := false
	defer func() {
		// Not committed: the new farm is garbage.
		if err != nil && !committed && !s.crashed {
			err = errors.Join(err, removeAll(farm))
		}
	}()
	if err := s.createBootlinks(bv, newSub, nl); err != nil {
		return err
	}
	if err := s.step(ctx, "bootlinks"); err != nil {
		return err
	}
	if err := s.syncAll(); err != nil {
		return err
	}
	if err := s.step(ctx, "synced"); err != nil {
		return err
	}
	if err := symlinkReplace(fmt.Sprintf("boot.%d.%d", bv, newSub), s.abs(fmt.Sprintf("ostree/boot.%d", bv))); err != nil {
		return fmt.Errorf("swapping ostree/boot.%d: %w", bv, err)
	}
	committed = true
	if err := fsutil.FsyncDir(s.abs("ostree")); err != nil {
		return err
	}
	return s.step(ctx, "committed")
}

// writeNewBootversion writes boot version 1-B and switches boot/loader
// to it.
func (s *Sysroot) writeNewBootversion(ctx context.Context, nl []Deployment) (err error) {
	nb := 1 - s.bootversion
	loaderN := s.abs(fmt.Sprintf("boot/loader.%d", nb))
	var newBootDirs []string
	committed := false
	defer func() {
		if err == nil || committed || s.crashed {
			return
		}
		// Not committed: the new boot version is garbage; remove it, its
		// ostree/boot.N link and farms, and the kernel directories this
		// attempt created.
		var errs []error
		errs = append(errs, err, removeAll(loaderN))
		os.Remove(s.abs("boot/loader.tmp"))
		for _, p := range []string{"ostree/boot.%d", "ostree/boot.%d.0", "ostree/boot.%d.1"} {
			errs = append(errs, removeAll(s.abs(fmt.Sprintf(p, nb))))
		}
		for _, d := range newBootDirs {
			errs = append(errs, removeAll(d))
		}
		err = errors.Join(errs...)
	}()
	entries := filepath.Join(loaderN, "entries")
	if err := removeAll(entries); err != nil {
		return err
	}
	if err := os.MkdirAll(entries, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", entries, err)
	}
	showOS := false
	for _, d := range nl {
		if d.OSName != nl[0].OSName {
			showOS = true
		}
	}
	for _, d := range nl {
		dir := s.abs("boot/ostree/" + d.OSName + "-" + d.BootChecksum)
		if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
			newBootDirs = append(newBootDirs, dir)
		}
		if err := s.installDeploymentKernel(nb, d, len(nl), showOS, dir, entries); err != nil {
			return fmt.Errorf("installing boot entry of %s: %w", d.Path(), err)
		}
	}
	if err := s.step(ctx, "entries"); err != nil {
		return err
	}
	sub, err := s.readSubbootversion(nb)
	if err != nil {
		return err
	}
	newSub := 1 - sub
	if err := s.createBootlinks(nb, newSub, nl); err != nil {
		return err
	}
	if err := symlinkReplace(fmt.Sprintf("boot.%d.%d", nb, newSub), s.abs(fmt.Sprintf("ostree/boot.%d", nb))); err != nil {
		return fmt.Errorf("swapping ostree/boot.%d: %w", nb, err)
	}
	if err := s.step(ctx, "bootlinks"); err != nil {
		return err
	}
	if err := os.Symlink(".", s.abs("boot/boot")); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating boot/boot: %w", err)
	}
	tmp := s.abs("boot/loader.tmp")
	os.Remove(tmp)
	if err := os.Symlink(fmt.Sprintf("loader.%d", nb), tmp); err != nil {
		return fmt.Errorf("creating boot/loader.tmp: %w", err)
	}
	if err := s.step(ctx, "loader-link"); err != nil {
		return err
	}
	if err := s.syncAll(); err != nil {
		return err
	}
	if err := s.step(ctx, "synced"); err != nil {
		return err
	}
	// The commit point.
	if err := os.Rename(tmp, s.abs("boot/loader")); err != nil {
		return fmt.Errorf("switching boot/loader to loader.%d: %w", nb, err)
	}
	committed = true
	if err := fsutil.FsyncDir(s.abs("boot")); err != nil {
		return err
	}
	return s.step(ctx, "committed")
}

// installDeploymentKernel installs d's kernel into bootDir and writes its
// BLS entry (install_deployment_kernel, docs/formats/sysroot.md).
func (s *Sysroot) installDeploymentKernel(nb int, d Deployment, n int, showOS bool, bootDir, entries string) error {
	root := s.abs(d.Path())
	k, err := findKernel(root)
	if err != nil {
		return err
	}
	if k.bootcsum != d.BootChecksum {
		return fmt.Errorf("kernel of %s has boot checksum %s, want %s: %w", d.Path(), k.bootcsum, d.BootChecksum, errdefs.ErrCorrupt)
	}
	if err := installKernel(k, bootDir); err != nil {
		return err
	}
	title, err := osReleaseTitle(root)
	if err != nil {
		return fmt.Errorf("deployment %s: %w", d.Path(), err)
	}
	if d.Version != "" && !strings.Contains(title, d.Version) {
		title += " " + d.Version
	}
	title += " (ostree"
	if showOS {
		title += ":" + d.OSName
	}
	title += ":" + strconv.Itoa(d.Index) + ")"
	bootRel := "/ostree/" + d.OSName + "-" + d.BootChecksum
	link := fmt.Sprintf("/ostree/boot.%d/%s/%s/%d", nb, d.OSName, d.BootChecksum, d.BootSerial)
	e := newBLSEntry()
	e.set("title", title)
	e.set("version", strconv.Itoa(n-d.Index))
	e.set("linux", bootRel+"/vmlinuz-"+k.kver)
	words := d.optionWords()
	if k.initramfs != "" {
		e.set("initrd", bootRel+"/initramfs-"+k.kver+".img")
	} else {
		words = replaceKarg(words, "init="+link+"/usr/lib/ostree/ostree-prepare-root")
	}
	switch k.devicetree {
	case "devicetree":
		e.set("devicetree", bootRel+"/devicetree-"+k.kver)
	case "dtb":
		e.set("fdtdir", bootRel+"/dtb")
	}
	words = replaceKarg(words, "ostree="+link)
	e.set("options", strings.Join(words, " "))
	name := filepath.Join(entries, fmt.Sprintf("ostree-%d-%s.conf", n-d.Index, d.OSName))
	if err := writeFileNoSync(name, e.bytes(), 0o644); err != nil {
		return fmt.Errorf("writing boot entry %s: %w", name, err)
	}
	return nil
}

// createBootlinks writes the symlink farm ostree/boot.BV.SUB/OS/BOOTCSUM/
// BOOTSERIAL -> ../../../deploy/OS/deploy/CSUM.SERIAL (create_new_bootlinks).
func (s *Sysroot) createBootlinks(bv, sub int, nl []Deployment) error {
	dir := s.abs(fmt.Sprintf("ostree/boot.%d.%d", bv, sub))
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	for _, d := range nl {
		parent := filepath.Join(dir, d.OSName, d.BootChecksum)
		if err := os.MkdirAll(parent, 0o755); err != nil {
			return fmt.Errorf("creating boot links: %w", err)
		}
		target := "../../../deploy/" + d.OSName + "/deploy/" + d.Name()
		if err := symlinkReplace(target, filepath.Join(parent, strconv.Itoa(d.BootSerial))); err != nil {
			return fmt.Errorf("creating boot links: %w", err)
		}
	}
	return nil
}

// symlinkReplace points link at target atomically: LINK.tmp, then a
// rename (symlink_at_replace).
func symlinkReplace(target, link string) error {
	tmp := link + ".tmp"
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	return os.Rename(tmp, link)
}

// syncAll flushes the sysroot's filesystem and, if different, /boot's.
func (s *Sysroot) syncAll() error {
	if err := fsutil.SyncFS(s.path); err != nil {
		return err
	}
	var a, b unix.Stat_t
	if err := unix.Stat(s.path, &a); err != nil {
		return fmt.Errorf("stat %s: %w", s.path, err)
	}
	if err := unix.Stat(s.abs("boot"), &b); err != nil {
		return fmt.Errorf("stat %s/boot: %w", s.path, err)
	}
	if a.Dev != b.Dev {
		return fsutil.SyncFS(s.abs("boot"))
	}
	return nil
}

// writeFileNoSync replaces p with data through a temporary file and a
// rename, without fsync: the caller syncs the filesystem before its
// commit point (GLNX_FILE_REPLACE_NODATASYNC).
func writeFileNoSync(p string, data []byte, perm fs.FileMode) error {
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".tmp")
	if err := os.WriteFile(tmp, data, perm); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Chmod(tmp, perm); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}
