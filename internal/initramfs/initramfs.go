package initramfs

import (
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/u-root/u-root/pkg/cpio"
)

// ModulesList is the archive's list of modules for /init to load, one
// absolute path a line, in load order (prepareroot.ModulesList).
const ModulesList = "etc/initrd-modules"

// FirstBootModulesList is the archive's list of modules /init loads only on
// a node's first boot, when it looks for a provisioning config
// (prepareroot.FirstBootModulesList): same format as ModulesList.
const FirstBootModulesList = "etc/initrd-modules-firstboot"

// NetworkModulesList is the archive's list of modules /init loads only when
// it brings the network up, to fetch a provisioning config
// (prepareroot.NetworkModulesList): same format as ModulesList.
const NetworkModulesList = "etc/initrd-modules-network"

// Options say what goes into an initramfs.
type Options struct {
	// Init is the path of the static binary installed as /init (normally
	// strata itself).
	Init string
	// ModulesDir is a kernel's module directory, TREE/usr/lib/modules/KVER
	// (see ModulesDir). Empty: no modules at all.
	ModulesDir string
	// Modules are loaded with their dependencies; nil means DefaultModules.
	Modules []string
	// FirstBootModules are loaded, with their dependencies, only on a
	// node's first boot. A module the kernel does not have is left out:
	// the machines that need it have it (qemu_fw_cfg on QEMU).
	FirstBootModules []string
	// NetworkModules are loaded, with their dependencies, only when the
	// network is needed; left out like FirstBootModules when missing.
	NetworkModules []string
	// MTime is the modification time of every entry, in seconds since the
	// epoch (SOURCE_DATE_EPOCH); 0 by default.
	MTime int64
	// Compression of the archive; the zero value (None) leaves it
	// uncompressed.
	Compression Compression
}

// Archive is a resolved initramfs, ready to be written.
type Archive struct {
	Kver    string   // kernel release, the base name of ModulesDir
	Modules []Module // in load order
	// FirstBoot and Network are the modules of Options.FirstBootModules and
	// Options.NetworkModules found, in load order, without those already in
	// Modules (or, for Network, in FirstBoot).
	FirstBoot []Module
	Network   []Module
	opts      Options
}

// Resolve checks the inputs and resolves the module list.
func Resolve(opts Options) (*Archive, error) {
	if err := checkStatic(opts.Init); err != nil {
		return nil, err
	}
	a := &Archive{opts: opts}
	if opts.ModulesDir == "" {
		return a, nil
	}
	names := opts.Modules
	if names == nil {
		names = DefaultModules
	}
	mods, err := ResolveModules(opts.ModulesDir, names)
	if err != nil {
		return nil, err
	}
	a.Kver = filepath.Base(opts.ModulesDir)
	a.Modules = mods
	seen := map[string]bool{}
	for _, m := range mods {
		seen[m.Name] = true
	}
	for _, l := range []struct {
		names []string
		out   *[]Module
	}{{opts.FirstBootModules, &a.FirstBoot}, {opts.NetworkModules, &a.Network}} {
		for _, n := range l.names {
			ms, err := ResolveModules(opts.ModulesDir, []string{n})
			if errors.Is(err, errdefs.ErrNotFound) {
				continue
			} else if err != nil {
				return nil, err
			}
			for _, m := range ms {
				if !seen[m.Name] {
					seen[m.Name] = true
					*l.out = append(*l.out, m)
				}
			}
		}
	}
	return a, nil
}

// checkStatic refuses an /init that needs a dynamic loader the initramfs lacks.
func checkStatic(p string) error {
	if p == "" {
		return fmt.Errorf("no init binary given: %w", errdefs.ErrInvalid)
	}
	f, err := elf.Open(p)
	if err != nil {
		return fmt.Errorf("init binary %s: %w", p, err)
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("init binary %s is dynamically linked (build it with CGO_ENABLED=0): %w", p, errdefs.ErrInvalid)
		}
	}
	return nil
}

// entry is one archive member before it is written.
type entry struct {
	name  string
	mode  uint64 // cpio S_IF* | permissions
	src   string // host file to copy, for regular files
	data  []byte // content, for regular files without src
	major uint64 // device number, for device nodes
	minor uint64
}

// entries returns the archive members sorted by path, parents first.
func (a *Archive) entries() []entry {
	es := map[string]entry{}
	dir := func(p string, perm uint64) {
		for ; p != "." && p != "/"; p = path.Dir(p) {
			if _, ok := es[p]; !ok {
				es[p] = entry{name: p, mode: cpio.S_IFDIR | perm}
			}
			perm = 0o755
		}
	}
	for _, d := range []string{"dev", "etc", "newroot", "proc", "run", "sys", "sysroot"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	es["dev/console"] = entry{name: "dev/console", mode: cpio.S_IFCHR | 0o600, major: 5, minor: 1}
	es["dev/null"] = entry{name: "dev/null", mode: cpio.S_IFCHR | 0o666, major: 1, minor: 3}
	es["init"] = entry{name: "init", mode: cpio.S_IFREG | 0o755, src: a.opts.Init}
	for _, l := range []struct {
		name string
		mods []Module
	}{{ModulesList, a.Modules}, {FirstBootModulesList, a.FirstBoot}, {NetworkModulesList, a.Network}} {
		var list strings.Builder
		for _, m := range l.mods {
			p := path.Join("lib/modules", a.Kver, m.Path)
			dir(path.Dir(p), 0o755)
			es[p] = entry{name: p, mode: cpio.S_IFREG | 0o644, src: filepath.Join(a.opts.ModulesDir, filepath.FromSlash(m.Path))}
			fmt.Fprintf(&list, "/%s\n", p)
		}
		if l.name == ModulesList || len(l.mods) > 0 {
			es[l.name] = entry{name: l.name, mode: cpio.S_IFREG | 0o644, data: []byte(list.String())}
		}
	}
	out := make([]entry, 0, len(es))
	for _, e := range es {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// WriteTo writes the archive to w and returns the number of bytes written.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	cw := &fsutil.CountWriter{W: w}
	out, err := compressor(cw, a.opts.Compression)
	if err != nil {
		return 0, err
	}
	rw := cpio.Newc.Writer(out)
	for i, e := range a.entries() {
		if err := writeEntry(rw, e, uint64(i+1), a.opts.MTime); err != nil {
			return cw.N, err
		}
	}
	if err := cpio.WriteTrailer(rw); err != nil {
		return cw.N, fmt.Errorf("writing cpio trailer: %w", err)
	}
	if err := out.Close(); err != nil {
		return cw.N, fmt.Errorf("compressing initramfs (%s): %w", a.opts.Compression, err)
	}
	return cw.N, nil
}

func writeEntry(rw cpio.RecordWriter, e entry, ino uint64, mtime int64) error {
	info := cpio.Info{
		Ino: ino, Mode: e.mode, NLink: 1, MTime: uint64(mtime),
		Rmajor: e.major, Rminor: e.minor, Name: e.name,
	}
	rec := cpio.Record{Info: info}
	switch {
	case e.mode&cpio.S_IFMT == cpio.S_IFDIR:
		rec.NLink = 2
	case e.src != "":
		f, err := os.Open(e.src)
		if err != nil {
			return fmt.Errorf("adding %s: %w", e.name, err)
		}
		defer f.Close()
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("adding %s: %w", e.name, err)
		}
		if !fi.Mode().IsRegular() {
			return fmt.Errorf("adding %s: %s is not a regular file: %w", e.name, e.src, errdefs.ErrInvalid)
		}
		// A SectionReader is no io.Closer: the cpio writer would close it.
		rec.ReaderAt = io.NewSectionReader(f, 0, fi.Size())
		rec.FileSize = uint64(fi.Size())
	case e.mode&cpio.S_IFMT == cpio.S_IFREG:
		rec = cpio.StaticRecord(e.data, info)
	}
	if err := rw.WriteRecord(rec); err != nil {
		return fmt.Errorf("writing %s: %w", e.name, err)
	}
	return nil
}

// Build writes the initramfs described by opts to w.
func Build(w io.Writer, opts Options) error {
	a, err := Resolve(opts)
	if err != nil {
		return err
	}
	_, err = a.WriteTo(w)
	return err
}

// BuildForTree writes the zstd-compressed initramfs of the OS tree at
// treeRoot: /init is
// initBinary and the modules are DefaultModules plus extraModules, and
// FirstBootModules and NetworkModules on demand, taken from
// treeRoot/usr/lib/modules/kver (kver "": the tree's only kernel). The result
// belongs at usr/lib/modules/KVER/initramfs.img (docs/formats/sysroot.md).
func BuildForTree(w io.Writer, treeRoot, kver, initBinary string, extraModules []string) error {
	dir, err := ModulesDir(treeRoot, kver)
	if err != nil {
		return err
	}
	return Build(w, Options{
		Compression:      Zstd,
		Init:             initBinary,
		ModulesDir:       dir,
		Modules:          append(append([]string(nil), DefaultModules...), extraModules...),
		FirstBootModules: FirstBootModules,
		NetworkModules:   NetworkModules,
	})
}
