package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
)

// fakeKernel is the kernel the sysroot ops add to the corpus, which has none: seeded random
// bytes of a typical Debian kernel's and initramfs's sizes, the same in every run.
var fakeKernel = []struct {
	name string
	size int64
	seed uint64
}{
	{"vmlinuz", 8 << 20, 1},
	{"initramfs.img", 30 << 20, 2},
}

// fakeKver is the kernel version of fakeKernel (usr/lib/modules/fakeKver).
const fakeKver = "6.1.0-bench"

// osTrees are the two trees the sysroot ops commit, shared by both tools: hardlinked copies of
// the corpus (cp -al, which leaves the corpus alone) with etc moved to usr/etc and fakeKernel
// added; next also has pullPackage changed.
type osTrees struct{ base, next string }

// sysrootTrees holds the trees of each corpus by their directory.
var sysrootTrees = map[string]*osTrees{}

func ensureTrees(ctx context.Context, f *fixture) (*osTrees, error) {
	// The fixture lives in WORK/CORPUS/sysroot/TOOL; the trees go beside the tools.
	dir := filepath.Join(filepath.Dir(f.dir), "trees")
	if t := sysrootTrees[dir]; t != nil {
		return t, nil
	}
	t := &osTrees{base: filepath.Join(dir, "base"), next: filepath.Join(dir, "next")}
	if err := removeAll(dir); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := execute(ctx, dir, []string{"cp", "-al", f.tree, t.base}); err != nil {
		return nil, fmt.Errorf("copying the corpus: %w", err)
	}
	if err := ostreeLayout(t.base); err != nil {
		return nil, err
	}
	if err := addFakeKernel(t.base); err != nil {
		return nil, err
	}
	if _, err := execute(ctx, dir, []string{"cp", "-al", t.base, t.next}); err != nil {
		return nil, fmt.Errorf("copying the corpus: %w", err)
	}
	if _, err := pullUpdate(t.next, pullPackage); err != nil {
		return nil, err
	}
	sysrootTrees[dir] = t
	return t, nil
}

// ostreeLayout moves tree's etc to usr/etc, where an OS commit keeps it: ostree 2022.7's
// deploy fails on a tree with /etc alone ("Preparing /etc: No such file or directory:
// /usr/etc"). A rename in the copy leaves the corpus alone.
func ostreeLayout(tree string) error {
	if _, err := os.Lstat(filepath.Join(tree, "usr/etc")); err == nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Join(tree, "usr"), 0o755); err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(tree, "etc"), filepath.Join(tree, "usr/etc")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("moving the corpus's etc to usr/etc: %w", err)
	}
	return nil
}

// addFakeKernel writes fakeKernel into tree's usr/lib/modules/fakeKver (mode 0644, directories
// 0755). The files are new, so a hardlinked copy of the corpus stays untouched.
func addFakeKernel(tree string) error {
	dir := filepath.Join(tree, "usr/lib/modules", fakeKver)
	for _, d := range []string{"usr", "usr/lib", "usr/lib/modules", "usr/lib/modules/" + fakeKver} {
		p := filepath.Join(tree, d)
		if err := os.Mkdir(p, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("adding the fake kernel: %w", err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for _, k := range fakeKernel {
		if err := writeSeeded(filepath.Join(dir, k.name), k.seed, k.size); err != nil {
			return fmt.Errorf("adding the fake kernel: %w", err)
		}
	}
	return nil
}

// writeSeeded writes n bytes of seededBytes to a new file at p, mode 0644.
func writeSeeded(p string, seed uint64, n int64) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	_, err = io.CopyN(f, seededBytes(seed), n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(p, 0o644) // whatever the umask
	}
	return err
}

// seededBytes is an endless stream of pseudo-random bytes, the same for the same seed.
func seededBytes(seed uint64) io.Reader {
	var s [32]byte
	copy(s[:], strconv.FormatUint(seed, 16))
	return rand.NewChaCha8(s)
}

// sysrootTemplate is a tool's sysroot with stateroot benchOS and both trees committed into
// its repository, copied for every run.
type sysrootTemplate struct {
	dir        string
	base, next string // commit checksums: refs benchBranch and nextBranch
}

// sysrootTemplates holds the template of each fixture.
var sysrootTemplates = map[*fixture]*sysrootTemplate{}

// ensureTemplate makes f's template sysroot, unmeasured, with f's tool alone: sysroot init or
// admin init-fs and os-init, then both commits with the tool's own commit command. The base
// commit is the same for both tools (the same tree, timestamp and subject), which the deploy
// op's same column shows.
func ensureTemplate(ctx context.Context, f *fixture) (*sysrootTemplate, error) {
	if t := sysrootTemplates[f]; t != nil {
		return t, nil
	}
	if v, ok := os.LookupEnv("OSTREE_SYSROOT_OPTS"); ok {
		// skip-sync would spare ostree the syncs strata does: not a fair comparison.
		fmt.Fprintf(os.Stderr, "bench: unsetting OSTREE_SYSROOT_OPTS=%s for the sysroot ops\n", v)
		os.Unsetenv("OSTREE_SYSROOT_OPTS")
	}
	trees, err := ensureTrees(ctx, f)
	if err != nil {
		return nil, err
	}
	if err := removeSysroot(f.dir); err != nil {
		return nil, err
	}
	t := &sysrootTemplate{dir: filepath.Join(f.dir, "template")}
	if err := os.MkdirAll(t.dir, 0o755); err != nil {
		return nil, err
	}
	if err := initSysroot(ctx, f.cli, t.dir); err != nil {
		return nil, fmt.Errorf("creating the template sysroot: %w", err)
	}
	repo := filepath.Join(t.dir, "ostree/repo")
	r, err := execute(ctx, f.dir, f.cli.commit(repo, benchBranch, trees.base))
	if err != nil {
		return nil, fmt.Errorf("committing the corpus into the sysroot repository: %w", err)
	}
	if t.base, err = parseChecksum(r.stdout); err != nil {
		return nil, err
	}
	// next is a child of base, as an OS update is.
	if err := os.WriteFile(filepath.Join(repo, "refs/heads", nextBranch), []byte(t.base+"\n"), 0o644); err != nil {
		return nil, err
	}
	if r, err = execute(ctx, f.dir, f.cli.commit(repo, nextBranch, trees.next)); err != nil {
		return nil, fmt.Errorf("committing the next tree into the sysroot repository: %w", err)
	}
	if t.next, err = parseChecksum(r.stdout); err != nil {
		return nil, err
	}
	if t.next == t.base {
		return nil, fmt.Errorf("the next tree committed to the corpus commit %s", t.base)
	}
	sysrootTemplates[f] = t
	return t, nil
}

// initSysroot makes an empty sysroot with stateroot benchOS at s. ostree's commands run with
// s/boot on a tmpfs too, in case they sync it: the template's boot must stay empty.
func initSysroot(ctx context.Context, c cli, s string) error {
	switch c := c.(type) {
	case strataCLI:
		_, err := execute(ctx, s, []string{c.bin, "sysroot", "init", "--sysroot", s, "--os", benchOS})
		return err
	case ostreeCLI:
		boot := filepath.Join(s, "boot")
		if err := os.Mkdir(boot, 0o755); err != nil {
			return err
		}
		if err := unix.Mount("tmpfs", boot, "tmpfs", 0, "mode=0755"); err != nil {
			return fmt.Errorf("mounting a tmpfs on %s: %w", boot, err)
		}
		_, err := execute(ctx, s, []string{c.bin, "admin", "init-fs", s})
		if err == nil {
			_, err = execute(ctx, s, []string{c.bin, "admin", "os-init", benchOS, "--sysroot=" + s})
		}
		if ents, rerr := os.ReadDir(boot); err == nil && (rerr != nil || len(ents) > 0) {
			err = fmt.Errorf("ostree admin init-fs/os-init wrote into boot (%d entries, %v): the template cannot keep them", len(ents), rerr)
		}
		return errors.Join(err, unmount(boot))
	}
	panic(fmt.Sprintf("internal error: no sysroot init for %T", c))
}

// copySysroot makes s a hardlinked copy of the template sysroot tmpl with a tmpfs of its own
// on s/boot. release unmounts it and removes s; it is set even when err is not.
func copySysroot(ctx context.Context, tmpl, s string) (release func() error, err error) {
	if err := removeSysroot(s); err != nil {
		return nil, err
	}
	release = func() error { return removeSysroot(s) }
	if _, err := execute(ctx, filepath.Dir(s), []string{"cp", "-al", tmpl, s}); err != nil {
		return release, fmt.Errorf("copying the template sysroot: %w", err)
	}
	boot := filepath.Join(s, "boot")
	if ents, err := os.ReadDir(boot); err != nil || len(ents) > 0 {
		return release, fmt.Errorf("the template's boot is not an empty directory (%d entries, %v)", len(ents), err)
	}
	if err := unix.Mount("tmpfs", boot, "tmpfs", 0, "mode=0755"); err != nil {
		return release, fmt.Errorf("mounting a tmpfs on %s: %w", boot, err)
	}
	return release, requireBootTmpfs(s)
}

// requireBootTmpfs fails unless s/boot is a tmpfs: `ostree admin` freezes the filesystem of
// s/boot, which would stop the machine's root filesystem if s/boot were on it.
func requireBootTmpfs(s string) error {
	var st unix.Statfs_t
	boot := filepath.Join(s, "boot")
	if err := unix.Statfs(boot, &st); err != nil {
		return fmt.Errorf("checking the filesystem of %s: %w", boot, err)
	}
	if st.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("%s is not a tmpfs (filesystem type %#x): refusing to run a deploy there", boot, st.Type)
	}
	return nil
}

// removeSysroot unmounts whatever is mounted below s, clears the immutable attribute the
// tools set on deployment directories, and removes s.
func removeSysroot(s string) error {
	var errs []error
	if f, err := os.Open("/proc/self/mountinfo"); err == nil {
		ms, err := mountsUnder(f, s)
		f.Close()
		errs = append(errs, err)
		for _, m := range ms {
			errs = append(errs, unmount(m))
		}
	} else {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err // never remove a tree with a mount inside
	}
	dirs, _ := filepath.Glob(filepath.Join(s, "*", "ostree/deploy/*/deploy/*"))
	more, _ := filepath.Glob(filepath.Join(s, "ostree/deploy/*/deploy/*"))
	for _, d := range append(dirs, more...) {
		if err := clearImmutable(d); err != nil {
			errs = append(errs, fmt.Errorf("clearing the immutable attribute of %s: %w", d, err))
		}
	}
	return errors.Join(append(errs, removeAll(s))...)
}

// unmount unmounts p, detaching it if it is busy (a killed command may still hold it).
func unmount(p string) error {
	err := unix.Unmount(p, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(p, unix.MNT_DETACH)
	}
	if err != nil {
		return fmt.Errorf("unmounting %s: %w", p, err)
	}
	return nil
}

// mountsUnder returns the mount points at or below dir in the mountinfo table info,
// deepest first, so that they can be unmounted in order.
func mountsUnder(info io.Reader, dir string) ([]string, error) {
	ms, err := mountinfo.GetMountsFromReader(info, mountinfo.PrefixFilter(filepath.Clean(dir)))
	if err != nil {
		return nil, fmt.Errorf("reading the mount table: %w", err)
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	// A later mount may sit on top of an earlier one at the same point: reverse order first,
	// then deepest path first.
	slices.Reverse(out)
	slices.SortStableFunc(out, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return out, nil
}

// clearImmutable clears the immutable attribute of directory p (chattr -i), which both tools
// set on deployment roots; files (.origin) and filesystems without attributes are left alone.
func clearImmutable(p string) error {
	err := fsutil.SetImmutable(p, false)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOENT) || errors.Is(err, errdefs.ErrUnsupported) {
		return nil
	}
	return err
}
