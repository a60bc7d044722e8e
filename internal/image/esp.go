package image

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
)

// DefaultESP is where a booted node mounts its ESP (the fstab line of
// FstabESP).
const DefaultESP = "/boot/efi"

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
// entries (boot/loader/entries/ostree-*.conf), so each ESP entry has
// exactly the title, options (ostree= included, in its place) and kernel
// files that `ostree admin` tooling sees; the ostree= link of each names
// its deployment. A deployment of list without an entry is
// errdefs.ErrCorrupt.
func Entries(sysrootPath string, list []sysroot.Deployment) ([]bootloader.Entry, error) {
	dir := filepath.Join(sysrootPath, "boot/loader/entries")
	des, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading the sysroot's boot entries: %w", err)
	}
	byDep := map[string]bootloader.Entry{}
	for _, de := range des {
		n := de.Name()
		if !strings.HasPrefix(n, "ostree-") || !strings.HasSuffix(n, ".conf") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading boot entry %s: %w", n, err)
		}
		e, err := entryFromBLS(sysrootPath, data)
		if err != nil {
			return nil, fmt.Errorf("boot entry %s: %w", n, err)
		}
		byDep[e.DeploymentKey()] = e
	}
	out := make([]bootloader.Entry, 0, len(list))
	for _, d := range list {
		e, ok := byDep[d.OSName+" "+d.Name()]
		if !ok {
			return nil, fmt.Errorf("deployment %s has no boot entry in %s: %w", d.Path(), dir, errdefs.ErrCorrupt)
		}
		e.Booted = d.Booted
		out = append(out, e)
	}
	return out, nil
}

// entryFromBLS reads one of the sysroot's BLS entries.
func entryFromBLS(sysrootPath string, data []byte) (bootloader.Entry, error) {
	kv := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if ok && line != "" && line[0] != '#' {
			if _, seen := kv[k]; !seen {
				kv[k] = v
			}
		}
	}
	var e bootloader.Entry
	e.Title, e.Options = kv["title"], kv["options"]
	var link string
	for _, w := range strings.Fields(e.Options) {
		if v, ok := strings.CutPrefix(w, "ostree="); ok {
			link = v
			break
		}
	}
	parts := strings.Split(strings.TrimPrefix(link, "/"), "/") // ostree boot.N OS BOOTCSUM SERIAL
	if len(parts) != 5 || parts[0] != "ostree" {
		return e, fmt.Errorf("ostree=%q is not /ostree/boot.N/OS/BOOTCSUM/SERIAL: %w", link, errdefs.ErrCorrupt)
	}
	target, err := os.Readlink(filepath.Join(sysrootPath, link))
	if err != nil {
		return e, fmt.Errorf("resolving ostree=%s: %w", link, err)
	}
	e.OS, e.BootChecksum, e.Deployment = parts[2], parts[3], filepath.Base(target)
	linux := kv["linux"]
	kver, ok := strings.CutPrefix(filepath.Base(linux), "vmlinuz-")
	if !ok || linux == "" {
		return e, fmt.Errorf("linux %q is not a vmlinuz-KVER file: %w", linux, errdefs.ErrCorrupt)
	}
	e.KernelVer = kver
	e.Kernel = filepath.Join(sysrootPath, "boot", linux)
	if initrd := kv["initrd"]; initrd != "" {
		e.Initramfs = filepath.Join(sysrootPath, "boot", initrd)
	}
	return e, nil
}
