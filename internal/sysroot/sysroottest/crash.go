package sysroottest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Helpers of the crash matrix (internal/sysroot/crash_*_test.go): copy a
// template sysroot, take an exact picture of one, and list what an
// operation that finished (or a cleanup after a crash) must not leave
// behind.

// CopySysroot copies the sysroot at src to dst (which must not exist)
// with `cp -a`, which keeps the hardlinks between the repository's
// objects and the deployments' files. cp does not copy the immutable
// attribute; the operations under test seal the deployments they make,
// so the copy's cleanup clears it (ClearImmutable).
func CopySysroot(t testing.TB, src, dst string) {
	t.Helper()
	t.Cleanup(func() { ClearImmutable(dst) })
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s %s: %v\n%s", src, dst, err, out)
	}
}

// Snapshot lists everything under the sysroot at root, one line per
// entry: path, mode, symlink target or, for regular files, size and
// SHA-256 of the content. Repository objects are listed by name only
// (their content is what repo fsck checks). Times are left out. Two
// snapshots are equal if and only if an operation changed nothing a boot,
// a deployment or the repository would see.
func Snapshot(root string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line := rel + " " + fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			line += " -> " + l
		case fi.Mode().IsRegular() && strings.HasPrefix(rel, "ostree/repo/objects/"):
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += fmt.Sprintf(" %d %s", fi.Size(), hex.EncodeToString(sum[:8]))
		}
		out = append(out, line)
		return nil
	})
	return out, err
}

// Tree returns the files under dir: relative path → content for regular
// files, "-> TARGET" for symlinks, "dir MODE" for directories. A missing
// dir is an empty tree.
func Tree(dir string) (map[string]string, error) {
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) && p == dir {
			return fs.SkipAll
		}
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + l
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().Perm().String()
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(data)
		}
		return nil
	})
	return out, err
}

// KernelComplete checks that the kernel and initramfs of v are the
// files its deployment ships (usr/lib/modules/KVER/vmlinuz and
// initramfs.img), byte for byte: a boot loader that follows the entry
// starts the kernel of the deployment it mounts.
func KernelComplete(root string, v View) error {
	dep := filepath.Join(root, v.Deployment)
	mods, err := filepath.Glob(filepath.Join(dep, "usr/lib/modules/*/vmlinuz"))
	if err != nil || len(mods) != 1 {
		return fmt.Errorf("deployment %s: want one usr/lib/modules/*/vmlinuz, have %v", v.Deployment, mods)
	}
	pairs := [][2]string{{v.Linux, mods[0]}}
	if v.Initrd != "" {
		pairs = append(pairs, [2]string{v.Initrd, filepath.Join(filepath.Dir(mods[0]), "initramfs.img")})
	}
	for _, p := range pairs {
		got, err := os.ReadFile(filepath.Join(root, "boot", p[0]))
		if err != nil {
			return fmt.Errorf("entry %s: %w", v.Entry, err)
		}
		want, err := os.ReadFile(p[1])
		if err != nil {
			return fmt.Errorf("deployment %s: %w", v.Deployment, err)
		}
		if string(got) != string(want) {
			return fmt.Errorf("entry %s: boot/%s (%d bytes) differs from %s (%d bytes)", v.Entry, p[0], len(got), p[1], len(want))
		}
	}
	return nil
}

// stagedTarget reads the target of strata's staged-deployment record
// (S/run/strata/staged-deployment) without importing the sysroot.
func stagedTarget(root string) (dir, bootcsum string, ok bool, err error) {
	data, err := os.ReadFile(filepath.Join(root, "run/strata/staged-deployment"))
	if errors.Is(err, fs.ErrNotExist) {
		return "", "", false, nil
	}
	if err != nil {
		return "", "", false, err
	}
	var rec struct {
		Target struct {
			Name     string `json:"name"`
			OSName   string `json:"osname"`
			BootCsum string `json:"bootcsum"`
		} `json:"target"`
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		return "", "", false, fmt.Errorf("staged record: %w", err)
	}
	t := rec.Target
	return "ostree/deploy/" + t.OSName + "/deploy/" + t.Name, t.OSName + "-" + t.BootCsum, true, nil
}

// Leftovers lists what the sysroot at root holds beyond its boot
// configuration and staged deployment: what a finished operation (or a
// Cleanup after an interrupted one) must have removed. It walks the
// entries of the current boot version as BootedView does and reports
// another boot version (boot/loader.N, ostree/boot.N, farms), temporary
// links and files (boot/loader.tmp, *.tmp, .strata-tmp-*), deployment
// directories and origins no entry or staged record names, boot/ostree
// directories no entry uses, deployment refs (ostree/B/S/I) that do not
// name the entries' commits, and anything in run/strata but the record
// of an existing staged deployment. An empty list means clean.
func Leftovers(root string) ([]string, error) {
	var out []string
	add := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	bv, sub := -1, -1
	deps := map[string]bool{}     // deployment directories referenced
	bootDirs := map[string]bool{} // boot/ostree/X referenced
	var byIndex []string          // commit checksums in entry order
	if t, err := os.Readlink(filepath.Join(root, "boot/loader")); err == nil {
		n, ok := strings.CutPrefix(t, "loader.")
		if !ok || (n != "0" && n != "1") {
			return nil, fmt.Errorf("boot/loader -> %q", t)
		}
		bv, _ = strconv.Atoi(n)
		st, err := os.Readlink(filepath.Join(root, "ostree", "boot."+n))
		if err != nil {
			return nil, fmt.Errorf("ostree/boot.%s: %w", n, err)
		}
		if sub, err = strconv.Atoi(strings.TrimPrefix(st, "boot."+n+".")); err != nil {
			return nil, fmt.Errorf("ostree/boot.%s -> %q", n, st)
		}
		entries := filepath.Join(root, "boot", t, "entries")
		ents, err := os.ReadDir(entries)
		if err != nil {
			return nil, err
		}
		type ent struct {
			ver  int
			csum string
		}
		var es []ent
		for _, e := range ents {
			if !strings.HasPrefix(e.Name(), "ostree-") || !strings.HasSuffix(e.Name(), ".conf") {
				add("boot/%s/entries/%s", t, e.Name())
				continue
			}
			data, err := os.ReadFile(filepath.Join(entries, e.Name()))
			if err != nil {
				return nil, err
			}
			kv := ParseEntry(data)
			ver, _ := strconv.Atoi(kv["version"])
			var link string
			for _, w := range strings.Fields(kv["options"]) {
				if s, ok := strings.CutPrefix(w, "ostree="); ok {
					link = s
				}
			}
			real, err := filepath.EvalSymlinks(filepath.Join(root, link))
			if err != nil {
				return nil, fmt.Errorf("entry %s: ostree=%s: %w", e.Name(), link, err)
			}
			absRoot, _ := filepath.EvalSymlinks(root)
			rel, _ := filepath.Rel(absRoot, real)
			deps[rel] = true
			csum, _, _ := strings.Cut(filepath.Base(rel), ".")
			es = append(es, ent{ver, csum})
			for _, k := range []string{"linux", "initrd"} {
				if v := kv[k]; v != "" {
					bootDirs[filepath.Base(filepath.Dir(v))] = true
				}
			}
		}
		slices.SortFunc(es, func(a, b ent) int { return b.ver - a.ver })
		for _, e := range es {
			byIndex = append(byIndex, e.csum)
		}
	}
	stagedDir, stagedBoot, hasStaged, err := stagedTarget(root)
	if err != nil {
		return nil, err
	}
	if hasStaged {
		if fi, err := os.Stat(filepath.Join(root, stagedDir)); err != nil || !fi.IsDir() {
			add("run/strata/staged-deployment names the missing %s", stagedDir)
		} else {
			// The sysroot lists a staged deployment first, refs included.
			deps[stagedDir] = true
			bootDirs[filepath.Base(stagedBoot)] = true
			csum, _, _ := strings.Cut(filepath.Base(stagedDir), ".")
			byIndex = append([]string{csum}, byIndex...)
		}
	}

	// boot/: loader, loader.B, boot -> ., ostree; nothing else of ours.
	bents, _ := os.ReadDir(filepath.Join(root, "boot"))
	for _, e := range bents {
		n := e.Name()
		switch {
		case n == "loader" || n == "boot" || n == "ostree":
		case n == fmt.Sprintf("loader.%d", bv):
		case strings.HasPrefix(n, "loader") || strings.HasPrefix(n, "."):
			add("boot/%s", n)
		}
	}
	kents, _ := os.ReadDir(filepath.Join(root, "boot/ostree"))
	for _, e := range kents {
		if !bootDirs[e.Name()] {
			add("boot/ostree/%s", e.Name())
			continue
		}
		files, _ := os.ReadDir(filepath.Join(root, "boot/ostree", e.Name()))
		for _, f := range files {
			if strings.HasPrefix(f.Name(), ".strata-tmp-") {
				add("boot/ostree/%s/%s", e.Name(), f.Name())
			}
		}
	}

	// ostree/: boot.B -> boot.B.S and that farm only.
	oents, _ := os.ReadDir(filepath.Join(root, "ostree"))
	for _, e := range oents {
		n := e.Name()
		if !strings.HasPrefix(n, "boot.") {
			continue
		}
		if n == fmt.Sprintf("boot.%d", bv) || n == fmt.Sprintf("boot.%d.%d", bv, sub) {
			continue
		}
		add("ostree/%s", n)
	}

	// ostree/deploy/OS/deploy: referenced directories and their origins.
	osents, _ := os.ReadDir(filepath.Join(root, "ostree/deploy"))
	for _, o := range osents {
		dir := filepath.Join("ostree/deploy", o.Name(), "deploy")
		ents, _ := os.ReadDir(filepath.Join(root, dir))
		for _, e := range ents {
			rel := filepath.Join(dir, e.Name())
			if e.IsDir() {
				if !deps[rel] {
					add("%s", rel)
				}
				continue
			}
			if d, ok := strings.CutSuffix(rel, ".origin"); ok && deps[d] {
				continue
			}
			add("%s", rel)
		}
	}

	// run/strata: the staged record only.
	rents, _ := os.ReadDir(filepath.Join(root, "run/strata"))
	for _, e := range rents {
		if e.Name() != "staged-deployment" || !hasStaged {
			add("run/strata/%s", e.Name())
		}
	}

	// Deployment refs: ostree/B/S/I names the commit of entry I.
	want := map[string]string{}
	for i, c := range byIndex {
		want[fmt.Sprintf("ostree/%d/%d/%d", bv, sub, i)] = c
	}
	refsDir := filepath.Join(root, "ostree/repo/refs/heads")
	filepath.WalkDir(filepath.Join(refsDir, "ostree"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		name, _ := filepath.Rel(refsDir, p)
		if strings.HasPrefix(d.Name(), ".") {
			// The residue of an interrupted atomic ref write
			// (".NAME.tmp-*"), which is not a ref (repo.ListRefs).
			return nil
		}
		data, _ := os.ReadFile(p)
		c := strings.TrimSpace(string(data))
		if want[name] == c {
			delete(want, name)
			return nil
		}
		add("ref %s -> %s", name, c)
		return nil
	})
	for name, c := range want {
		add("ref %s -> %s is missing", name, c)
	}
	slices.Sort(out)
	return out, nil
}
