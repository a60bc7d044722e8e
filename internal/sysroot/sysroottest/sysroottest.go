// Package sysroottest holds test helpers for sysroots: a fake OS tree
// committed into a repository, and BootedView, the "firmware walk" that
// finds what the next boot would start. Tests of internal/sysroot, the
// crash matrix and the differential tests against `ostree admin` import
// it; nothing else does.
package sysroottest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// View is what a boot of the sysroot would start: the highest-version
// BLS entry of the current boot/loader, its kernel and initramfs, and the
// deployment its ostree= argument resolves to.
type View struct {
	Loader     string // boot/loader target, "loader.0" or "loader.1"
	Entry      string // file name of the entry in loader.N/entries
	Title      string
	Version    string
	Options    string
	Linux      string // path relative to /boot
	Initrd     string // path relative to /boot, "" if none
	Ostree     string // the ostree= value
	Deployment string // deployment directory relative to the sysroot
	Checksum   string // commit checksum of the deployment
	Serial     int
}

// BootedView walks the sysroot at root as a BLS boot loader and
// ostree-prepare-root would: boot/loader -> loader.N, the entry with the
// highest version in loader.N/entries, its linux and initrd files under
// boot/, and the ostree= symlink to a deployment directory that holds usr
// and etc. Any break in that chain is an error naming the link.
func BootedView(root string) (View, error) {
	var v View
	t, err := os.Readlink(filepath.Join(root, "boot/loader"))
	if err != nil {
		return v, fmt.Errorf("boot/loader: %w", err)
	}
	if t != "loader.0" && t != "loader.1" {
		return v, fmt.Errorf("boot/loader -> %q", t)
	}
	v.Loader = t
	dir := filepath.Join(root, "boot", t, "entries")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return v, fmt.Errorf("reading entries: %w", err)
	}
	type entry struct {
		name string
		kv   map[string]string
		ver  int
	}
	var es []entry
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return v, err
		}
		kv := ParseEntry(data)
		n, err := strconv.Atoi(kv["version"])
		if err != nil {
			return v, fmt.Errorf("entry %s: version %q", e.Name(), kv["version"])
		}
		es = append(es, entry{e.Name(), kv, n})
	}
	if len(es) == 0 {
		return v, fmt.Errorf("no entries in %s", dir)
	}
	sort.Slice(es, func(i, j int) bool { return es[i].ver > es[j].ver })
	e := es[0]
	v.Entry, v.Title, v.Version, v.Options = e.name, e.kv["title"], e.kv["version"], e.kv["options"]
	v.Linux, v.Initrd = e.kv["linux"], e.kv["initrd"]
	if err := regular(filepath.Join(root, "boot", v.Linux)); err != nil {
		return v, fmt.Errorf("entry %s: linux: %w", e.name, err)
	}
	if v.Initrd != "" {
		if err := regular(filepath.Join(root, "boot", v.Initrd)); err != nil {
			return v, fmt.Errorf("entry %s: initrd: %w", e.name, err)
		}
	}
	for _, w := range strings.Fields(v.Options) {
		if s, ok := strings.CutPrefix(w, "ostree="); ok {
			v.Ostree = s
			break
		}
	}
	if v.Ostree == "" {
		return v, fmt.Errorf("entry %s: no ostree= in options", e.name)
	}
	link := filepath.Join(root, v.Ostree)
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		return v, fmt.Errorf("entry %s: ostree=%s is not a symlink (%v)", e.name, v.Ostree, err)
	}
	real, err := filepath.EvalSymlinks(link)
	if err != nil {
		return v, fmt.Errorf("entry %s: resolving ostree=%s: %w", e.name, v.Ostree, err)
	}
	absRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		return v, err
	}
	rel, err := filepath.Rel(absRoot, real)
	if err != nil || strings.HasPrefix(rel, "..") {
		return v, fmt.Errorf("entry %s: ostree=%s resolves outside the sysroot: %s", e.name, v.Ostree, real)
	}
	v.Deployment = rel
	base := filepath.Base(rel)
	c, s, ok := strings.Cut(base, ".")
	if !ok {
		return v, fmt.Errorf("deployment %s: not CHECKSUM.SERIAL", rel)
	}
	v.Checksum = c
	if v.Serial, err = strconv.Atoi(s); err != nil {
		return v, fmt.Errorf("deployment %s: not CHECKSUM.SERIAL", rel)
	}
	for _, d := range []string{"usr", "etc"} {
		if fi, err := os.Stat(filepath.Join(real, d)); err != nil || !fi.IsDir() {
			return v, fmt.Errorf("deployment %s: no %s directory", rel, d)
		}
	}
	return v, nil
}

func regular(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !fi.Mode().IsRegular() {
		return errors.New(p + " is not a regular file")
	}
	return nil
}

// ParseEntry parses BLS entry text into key → value (the last value of a
// repeated key wins; the first initrd is kept).
func ParseEntry(data []byte) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(line, " ")
		if !ok || k == "" || strings.HasPrefix(k, "#") {
			continue
		}
		if _, dup := kv[k]; dup && k == "initrd" {
			continue
		}
		kv[k] = v
	}
	return kv
}
