package initramfs

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// DefaultModules are the modules of a root filesystem on ext4 on a virtio,
// SATA (AHCI) or NVMe disk: virtio_pci and virtio_blk for QEMU/KVM, ahci and
// sd_mod for SATA, nvme for NVMe, ext4 (which pulls in jbd2, mbcache, crc16
// and crc32c_generic). Debian builds all of them as modules (docs/vm.md);
// with dependencies they are 25 modules, 5.3 MB on Debian 6.1. virtio_scsi,
// overlay, erofs, squashfs, loop and USB storage are left out; add them with
// extra modules when an image needs them.
var DefaultModules = []string{"virtio_pci", "virtio_blk", "ahci", "sd_mod", "nvme", "ext4"}

// VirtioModules are enough for ext4 on a virtio disk, the QEMU test machines'
// case (11 modules). Under TCG emulation loading them takes about 0.7 s where
// DefaultModules take 2.2 s, mostly libata/ahci probing q35's AHCI controller.
var VirtioModules = []string{"virtio_pci", "virtio_blk", "ext4"}

// FirstBootModules are what prepare-root needs on a node's first boot only,
// to find its provisioning config (docs/provisioning.md): qemu_fw_cfg shows
// QEMU's fw_cfg entries in sysfs.
var FirstBootModules = []string{"qemu_fw_cfg"}

// NetworkModules are loaded only when prepare-root brings the network up to
// fetch an ignition.config.url= config: virtio_net is QEMU's network card.
// Other network drivers can be added as extra modules.
var NetworkModules = []string{"virtio_net"}

// Module is one kernel module in load order.
type Module struct {
	Name string `json:"name"` // normalized module name, e.g. "crc32c_generic"
	Path string `json:"path"` // path inside the module directory, e.g. "kernel/crypto/crc32c_generic.ko"
}

// moduleIndex is what depmod wrote about one kernel's modules.
type moduleIndex struct {
	dir      string
	path     map[string]string   // name → relative path
	deps     map[string][]string // name → names of its modules.dep dependencies, as listed
	pre      map[string][]string // softdep pre: names or aliases
	post     map[string][]string // softdep post: names or aliases
	builtin  map[string]bool
	aliases  map[string][]string // exact alias → names, from modules.alias (read lazily)
	patterns [][2]string         // glob alias → name
	aliasErr error
	loaded   bool
}

// modName turns a module path or name into the kernel's module name:
// basename without .ko[.xz|.zst|.gz], dashes as underscores.
func modName(p string) string {
	b := path.Base(p)
	for _, ext := range []string{".xz", ".zst", ".gz"} {
		b = strings.TrimSuffix(b, ext)
	}
	b = strings.TrimSuffix(b, ".ko")
	return strings.ReplaceAll(b, "-", "_")
}

// readIndex reads modules.dep, modules.softdep and modules.builtin of dir.
func readIndex(dir string) (*moduleIndex, error) {
	ix := &moduleIndex{
		dir: dir, path: map[string]string{}, deps: map[string][]string{},
		pre: map[string][]string{}, post: map[string][]string{}, builtin: map[string]bool{},
	}
	err := eachLine(filepath.Join(dir, "modules.dep"), func(line string) error {
		mod, deps, ok := strings.Cut(line, ":")
		if !ok {
			return fmt.Errorf("line %q: no colon: %w", line, errdefs.ErrCorrupt)
		}
		n := modName(mod)
		ix.path[n] = mod
		for _, d := range strings.Fields(deps) {
			ix.deps[n] = append(ix.deps[n], modName(d))
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s has no modules.dep (run depmod for this kernel): %w", dir, errdefs.ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	// "softdep MOD pre: A B post: C"; names before pre:/post: are ignored, as kmod does.
	err = eachLine(filepath.Join(dir, "modules.softdep"), func(line string) error {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "softdep" {
			return nil
		}
		n := modName(f[1])
		var into map[string][]string
		for _, w := range f[2:] {
			switch w {
			case "pre:":
				into = ix.pre
			case "post:":
				into = ix.post
			default:
				if into != nil {
					into[n] = append(into[n], w)
				}
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	err = eachLine(filepath.Join(dir, "modules.builtin"), func(line string) error {
		ix.builtin[modName(line)] = true
		return nil
	})
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return ix, nil
}

// readAliases reads modules.alias the first time an alias is needed.
func (ix *moduleIndex) readAliases() error {
	if ix.loaded {
		return ix.aliasErr
	}
	ix.loaded = true
	ix.aliases = map[string][]string{}
	ix.aliasErr = eachLine(filepath.Join(ix.dir, "modules.alias"), func(line string) error {
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "alias" {
			return nil
		}
		if strings.ContainsAny(f[1], "*?[") {
			ix.patterns = append(ix.patterns, [2]string{f[1], modName(f[2])})
		} else {
			ix.aliases[f[1]] = append(ix.aliases[f[1]], modName(f[2]))
		}
		return nil
	})
	if errors.Is(ix.aliasErr, fs.ErrNotExist) {
		ix.aliasErr = nil
	}
	return ix.aliasErr
}

// lookup maps a name or alias to modules. For an alias that several modules
// provide (crypto-crc32c: crc32c_intel and crc32c_generic), the *_generic ones
// are chosen when there are any: they load on every CPU, while an accelerated
// variant fails without its CPU feature. builtin reports a built-in module.
func (ix *moduleIndex) lookup(name string) (mods []string, builtin bool, err error) {
	n := modName(name)
	if ix.builtin[n] {
		return nil, true, nil
	}
	if _, ok := ix.path[n]; ok {
		return []string{n}, false, nil
	}
	if err := ix.readAliases(); err != nil {
		return nil, false, err
	}
	cands := append([]string(nil), ix.aliases[name]...)
	for _, p := range ix.patterns {
		if ok, _ := path.Match(p[0], name); ok {
			cands = append(cands, p[1])
		}
	}
	var generic, all []string
	seen := map[string]bool{}
	for _, c := range cands {
		if seen[c] {
			continue
		}
		seen[c] = true
		if ix.builtin[c] {
			return nil, true, nil
		}
		if _, ok := ix.path[c]; !ok {
			continue
		}
		all = append(all, c)
		if strings.HasSuffix(c, "_generic") {
			generic = append(generic, c)
		}
	}
	if len(generic) > 0 {
		return generic, false, nil
	}
	return all, false, nil
}

// ResolveModules returns the modules to load for names, in load order:
// every module once, its softdep pre modules and its modules.dep
// dependencies before it, its softdep post modules after it. dir is a
// kernel's module directory (TREE/usr/lib/modules/KVER). A requested name
// that is neither a module, an alias nor built in is an error; a softdep that
// resolves to nothing is skipped, as modprobe does.
func ResolveModules(dir string, names []string) ([]Module, error) {
	ix, err := readIndex(dir)
	if err != nil {
		return nil, err
	}
	r := resolver{ix: ix, state: map[string]int{}}
	for _, n := range names {
		mods, builtin, err := ix.lookup(n)
		if err != nil {
			return nil, err
		}
		if len(mods) == 0 && !builtin {
			return nil, fmt.Errorf("module %s: not in %s/modules.dep, modules.alias or modules.builtin: %w", n, dir, errdefs.ErrNotFound)
		}
		for _, m := range mods {
			if err := r.visit(m); err != nil {
				return nil, err
			}
		}
	}
	return r.out, nil
}

type resolver struct {
	ix    *moduleIndex
	state map[string]int // 1 visiting, 2 done
	out   []Module
}

func (r *resolver) soft(names []string) error {
	for _, s := range names {
		mods, _, err := r.ix.lookup(s)
		if err != nil {
			return err
		}
		for _, m := range mods {
			if err := r.visit(m); err != nil {
				return err
			}
		}
	}
	return nil
}

func (r *resolver) visit(n string) error {
	if r.state[n] != 0 {
		return nil // done, or a softdep cycle (modules.dep itself has none)
	}
	r.state[n] = 1
	if err := r.soft(r.ix.pre[n]); err != nil {
		return err
	}
	// depmod lists the dependencies of dependencies last; modprobe loads the
	// list from its end. visit recurses anyway, so the order only breaks ties.
	deps := r.ix.deps[n]
	for i := len(deps) - 1; i >= 0; i-- {
		d := deps[i]
		if _, ok := r.ix.path[d]; !ok {
			return fmt.Errorf("module %s depends on %s, which modules.dep does not list: %w", n, d, errdefs.ErrCorrupt)
		}
		if err := r.visit(d); err != nil {
			return err
		}
	}
	r.state[n] = 2
	r.out = append(r.out, Module{Name: n, Path: r.ix.path[n]})
	return r.soft(r.ix.post[n])
}

// eachLine calls fn for each non-empty, non-comment line of a file.
func eachLine(file string, fn func(string) error) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := fn(line); err != nil {
			return fmt.Errorf("%s: %w", file, err)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading %s: %w", file, err)
	}
	return nil
}

// ModulesDir returns TREE/usr/lib/modules/KVER (or TREE/lib/modules/KVER in a
// tree without merged /usr). With kver "", the tree must hold exactly one kernel.
func ModulesDir(treeRoot, kver string) (string, error) {
	for _, base := range []string{"usr/lib/modules", "lib/modules"} {
		b := filepath.Join(treeRoot, base)
		if kver != "" {
			if fi, err := os.Stat(filepath.Join(b, kver)); err == nil && fi.IsDir() {
				return filepath.Join(b, kver), nil
			}
			continue
		}
		ents, err := os.ReadDir(b)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		} else if err != nil {
			return "", fmt.Errorf("listing kernels: %w", err)
		}
		var kvers []string
		for _, e := range ents {
			if e.IsDir() {
				kvers = append(kvers, e.Name())
			}
		}
		sort.Strings(kvers)
		switch len(kvers) {
		case 0:
			continue
		case 1:
			return filepath.Join(b, kvers[0]), nil
		default:
			return "", fmt.Errorf("%s holds several kernels (%s): choose one: %w", b, strings.Join(kvers, ", "), errdefs.ErrInvalid)
		}
	}
	if kver != "" {
		return "", fmt.Errorf("kernel %s: no usr/lib/modules/%s in %s: %w", kver, kver, treeRoot, errdefs.ErrNotFound)
	}
	return "", fmt.Errorf("no kernel modules (usr/lib/modules/KVER) in %s: %w", treeRoot, errdefs.ErrNotFound)
}
