package boot

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
)

// DefaultESP is where a booted node mounts its ESP (the fstab line of
// image.FstabESP).
const DefaultESP = distro.ESPMountPoint

// ESP projects a sysroot's deployment list onto the ESP directory Dir.
// It is the sysroot.Bootloader of a node (sysroot.WithBootloader).
type ESP struct {
	Dir     string
	Options bootloader.Options
}

var _ sysroot.Bootloader = (*ESP)(nil)

// Sync converts list into boot entries (see Entries) and runs
// bootloader.Sync.
func (e *ESP) Sync(ctx context.Context, sysrootPath string, list []sysroot.Deployment) error {
	ents, err := Entries(sysrootPath, list)
	if err != nil {
		return err
	}
	return bootloader.Sync(ctx, e.Dir, ents, e.Options)
}

// Entries converts the committed deployment list of the sysroot at
// sysrootPath into ESP boot entries. It reads the sysroot's own BLS
// entries (sysroot.ReadBootEntries), so each ESP entry has exactly the
// title, options (ostree= included, in its place) and kernel files that
// `ostree admin` tooling sees. A deployment of list without an entry, or
// an entry whose kernel is not a vmlinuz-KVER file, is errdefs.ErrCorrupt.
func Entries(sysrootPath string, list []sysroot.Deployment) ([]bootloader.Entry, error) {
	bes, err := sysroot.ReadBootEntries(sysrootPath)
	if err != nil {
		return nil, fmt.Errorf("reading the boot entries of sysroot %s: %w", sysrootPath, err)
	}
	byKey := make(map[string]sysroot.BootEntry, len(bes))
	for _, be := range bes {
		byKey[be.Deployment.Key()] = be
	}
	out := make([]bootloader.Entry, 0, len(list))
	for _, d := range list {
		be, ok := byKey[d.Key()]
		if !ok {
			return nil, fmt.Errorf("deployment %s has no boot entry in sysroot %s: %w", d.Path(), sysrootPath, errdefs.ErrCorrupt)
		}
		e, err := espEntry(sysrootPath, be)
		if err != nil {
			return nil, fmt.Errorf("boot entry %s: %w", be.File, err)
		}
		e.Booted = d.Booted
		out = append(out, e)
	}
	return out, nil
}

// espEntry converts one of the sysroot's entries into an ESP entry. Only
// the first initrd goes to the ESP: strata's initramfs is one image.
func espEntry(sysrootPath string, be sysroot.BootEntry) (bootloader.Entry, error) {
	d := be.Deployment
	kver, ok := strings.CutPrefix(filepath.Base(be.Linux), "vmlinuz-")
	if !ok || be.Linux == "" {
		return bootloader.Entry{}, fmt.Errorf("linux %q is not a vmlinuz-KVER file: %w", be.Linux, errdefs.ErrCorrupt)
	}
	e := bootloader.Entry{
		OS:           d.OSName,
		Deployment:   d.Name(),
		BootChecksum: d.BootChecksum,
		KernelVer:    kver,
		Kernel:       filepath.Join(sysrootPath, "boot", be.Linux),
		Title:        be.Title,
		Options:      be.Options,
	}
	var initramfs string
	if len(be.Initrd) > 0 {
		initramfs = be.Initrd[0]
	}
	for _, p := range []string{be.Linux, initramfs} {
		if p != "" && !filepath.IsLocal(strings.TrimPrefix(p, "/")) {
			return bootloader.Entry{}, fmt.Errorf("%q leaves the sysroot's /boot: %w", p, errdefs.ErrCorrupt)
		}
	}
	if initramfs != "" {
		e.Initramfs = filepath.Join(sysrootPath, "boot", initramfs)
	}
	return e, nil
}
