package compose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Commit metadata of a derived (layered) commit (docs/layering.md), each
// an array of strings.
const (
	MetaLayerRequested = "strata.layer.requested" // packages installed by name
	MetaLayerLocal     = "strata.layer.local"     // local .deb files, SHA256:NAME_VERSION_ARCH
	MetaLayerRemoved   = "strata.layer.removed"   // base packages removed
)

// LayerTmpfilesConf is the tmpfiles.d file of a derived commit: what the
// layered packages put in /var, recreated at boot.
const LayerTmpfilesConf = "usr/lib/tmpfiles.d/strata-layer.conf"

// LocalDeb is a .deb file given by path, checked by CheckDeb.
type LocalDeb struct {
	Path         string
	SHA256       string // of the whole file
	Package      string
	Version      string
	Architecture string
}

// ID is how the origin and the commit metadata name the file:
// SHA256:NAME_VERSION_ARCH.
func (d LocalDeb) ID() string {
	return d.SHA256 + ":" + d.Package + "_" + d.Version + "_" + d.Architecture
}

// DeriveRequest is what a derived commit changes on its base.
type DeriveRequest struct {
	Install []string   // package names installed with apt from the sources
	Local   []LocalDeb // .deb files installed with their dependencies
	Remove  []string   // base packages purged with dpkg
}

// Empty says whether the request changes nothing.
func (q DeriveRequest) Empty() bool {
	return len(q.Install) == 0 && len(q.Local) == 0 && len(q.Remove) == 0
}

// DeriveOptions tune Derive.
type DeriveOptions struct {
	// SourceFiles, if set, are the apt sources used instead of the base
	// tree's own /etc/apt/sources.list{,.d}: files by name (NAME.list in
	// one-line format, NAME.sources in deb822), the node's configuration.
	SourceFiles map[string][]byte
	// TmpDir is where the work directory goes; "" means the repository's
	// tmp/ (the checkout hardlinks objects, so it must be on the
	// repository's filesystem).
	TmpDir string
	// CacheDir, if set, keeps apt's package lists, their binary caches and
	// the downloaded .debs between derivations (lists/ and cache/ in it,
	// bind-mounted on /var/lib/apt/lists and /var/cache/apt), so that an
	// upgrade's apt-get update asks the archive only for what changed.
	CacheDir string
	// Log receives apt's and dpkg's output; nil discards it (the end of
	// it is in the error when they fail).
	Log io.Writer
	// KeepBaseCheckout keeps the checkout of the base that was the
	// overlay's lower layer, which nothing wrote to, and returns it as
	// DeriveResult.BaseCheckout instead of removing it: a checkout of the
	// derived commit can take its unchanged directories from it
	// (repo.CheckoutDonor) rather than making them and removing these.
	KeepBaseCheckout bool
}

// DeriveResult describes a derived commit.
type DeriveResult struct {
	Base     ostree.Checksum
	Commit   ostree.Checksum
	Packages []Package // every installed package of the derived commit
	Added    []Package // packages the base does not have (layered and their dependencies)
	Removed  []Package // base packages the derived commit lacks
	Stats    DeriveStats
	// BaseCheckout, with KeepBaseCheckout, is the checkout of Base in
	// the repository's tmp/ (or TmpDir); the caller removes it.
	BaseCheckout string
}

// DeriveStats count what the derived commit wrote into the repository.
type DeriveStats struct {
	ContentWritten int64 // content objects (files and symlinks) new in the repository
	ContentReused  int64 // content objects of the upper layer that existed already
	MetaWritten    int64 // dirtree, dirmeta and commit objects new in the repository
	BytesWritten   int64 // payload bytes of the new content objects
	Checkout       time.Duration
	Install        time.Duration
	Commit         time.Duration
	Cleanup        time.Duration // unmounting and removing the work directory
}

var packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$`)

// Derive makes a commit from base with the request's packages installed
// and removed by Debian's own tools, and returns it (no ref moves; the
// caller deploys it). How (docs/layering.md):
//
//  1. base is checked out (hardlinks, in the repository's tmp/) and
//     becomes the read-only lower layer of an overlayfs with an empty
//     upper directory: nothing dpkg or a maintainer script does can write
//     into the hardlinked objects.
//  2. In the merged view, /etc is /usr/etc (bind mount), /var/lib/dpkg a
//     symlink to the database in /usr/lib/sysimage/dpkg, /var, /tmp and
//     /run are tmpfs, /proc and /dev are mounted; dpkg --purge removes,
//     then apt-get installs, chrooted there.
//  3. What the packages put in /var becomes tmpfiles.d lines
//     (LayerTmpfilesConf), as compose does for the base.
//  4. The commit is base's tree with the upper directory's changes applied
//     (a whiteout deletes, an opaque directory replaces): only the
//     packages' files, the database and the changed directories are
//     written. Its parent is base; its metadata is base's, with
//     strata.packages updated and the MetaLayer* keys added.
//
// Any failure leaves nothing behind but objects no ref names (removed by
// the next prune).
func Derive(ctx context.Context, r *repo.Repo, base ostree.Checksum, q DeriveRequest, opts DeriveOptions) (_ *DeriveResult, err error) {
	res := &DeriveResult{Base: base}
	bc, err := r.ReadCommit(base)
	if err != nil {
		return nil, fmt.Errorf("deriving from %s: %w", base, err)
	}
	basePkgs, _, err := CommitPackages(bc.Metadata)
	if err != nil {
		return nil, fmt.Errorf("deriving from %s: %w", base, err)
	}
	if err := checkRequest(q, basePkgs); err != nil {
		return nil, fmt.Errorf("deriving from %s: %w", base, err)
	}
	tmp := opts.TmpDir
	if tmp == "" {
		tmp = filepath.Join(r.Path(), "tmp")
	}
	work, err := os.MkdirTemp(tmp, "strata-layer-")
	if err != nil {
		return nil, fmt.Errorf("deriving from %s: %w", base, err)
	}
	defer func() {
		start := time.Now()
		if rerr := removeWorkDir(work); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing %s: %w", work, rerr))
		}
		res.Stats.Cleanup = time.Since(start)
	}()

	start := time.Now()
	lower := filepath.Join(work, "lower")
	if _, err := repo.Checkout(ctx, r, base.String(), lower, repo.CheckoutOptions{NoVerifyLinks: true}); err != nil {
		return nil, fmt.Errorf("deriving from %s: %w", base, err)
	}
	res.Stats.Checkout = time.Since(start)

	start = time.Now()
	upper := filepath.Join(work, "upper")
	if err := runLayered(ctx, work, lower, upper, q, opts); err != nil {
		return nil, fmt.Errorf("deriving from %s: %w", base, err)
	}
	res.Stats.Install = time.Since(start)

	start = time.Now()
	if err := commitDerived(ctx, r, bc, base, upper, q, res); err != nil {
		return nil, fmt.Errorf("deriving from %s: %w", base, err)
	}
	res.Stats.Commit = time.Since(start)
	res.Added, res.Removed = addedRemoved(basePkgs, res.Packages)
	if opts.KeepBaseCheckout {
		// Moved beside the work directory, which goes. Its root's mtime
		// is now, not the checkout's 0: a repository prune removes
		// entries of tmp/ that look a day old. (The root is never taken
		// by a donor checkout, only its subdirectories.)
		kept, now := work+"-base", time.Now()
		if err := os.Rename(lower, kept); err != nil {
			return nil, fmt.Errorf("deriving from %s: keeping the base's checkout: %w", base, err)
		}
		if err := os.Chtimes(kept, now, now); err != nil {
			return nil, errors.Join(fmt.Errorf("deriving from %s: keeping the base's checkout: %w", base, err), os.RemoveAll(kept))
		}
		res.BaseCheckout = kept
	}
	return res, nil
}

// checkRequest refuses names that are not package names, packages to
// install that the base has, and removals of packages it lacks.
func checkRequest(q DeriveRequest, base []Package) error {
	has := func(n string) bool {
		return slices.ContainsFunc(base, func(p Package) bool { return p.Name == n })
	}
	for _, n := range slices.Concat(q.Install, q.Remove) {
		if !packageName.MatchString(n) {
			return fmt.Errorf("%q is not a Debian package name: %w", n, errdefs.ErrInvalid)
		}
	}
	for _, n := range q.Install {
		if has(n) {
			return fmt.Errorf("package %s is in the base commit already: %w", n, errdefs.ErrAlreadyExists)
		}
	}
	for _, n := range q.Remove {
		if !has(n) {
			return fmt.Errorf("package %s to remove is not in the base commit: %w", n, errdefs.ErrNotFound)
		}
	}
	for _, d := range q.Local {
		if !packageName.MatchString(d.Package) {
			return fmt.Errorf("%s: %q is not a Debian package name: %w", d.Path, d.Package, errdefs.ErrInvalid)
		}
	}
	return nil
}

// undo is a LIFO stack of cleanups (unmounts).
type undo []func() error

func (u *undo) push(f func() error) { *u = append(*u, f) }

func (u *undo) run() error {
	var errs []error
	for i := len(*u) - 1; i >= 0; i-- {
		errs = append(errs, (*u)[i]())
	}
	*u = nil
	return errors.Join(errs...)
}

// runLayered runs runMounted in a mount namespace of its own, on a thread
// that is never unlocked: the thread ends with the goroutine, and the
// namespace and every mount in it with the thread, even if strata is
// killed before it unmounts (a later removal of the work directory then
// cannot reach through a leftover bind mount into the host's /dev). The
// mounts do not propagate to the host either (private). Go starts new
// threads from a template thread, never from a locked one, so no other
// goroutine runs in the namespace; processes started from this goroutine
// do.
func runLayered(ctx context.Context, work, lower, upper string, q DeriveRequest, opts DeriveOptions) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			errc <- fmt.Errorf("entering a mount namespace of its own: %w", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			errc <- fmt.Errorf("making the mount namespace private: %w", err)
			return
		}
		errc <- runMounted(ctx, work, lower, upper, q, opts)
	}()
	return <-errc
}

// runMounted mounts the overlay of lower and upper, prepares the merged
// view for Debian's tools, runs them, and unmounts everything: upper then
// holds exactly what they changed.
func runMounted(ctx context.Context, work, lower, upper string, q DeriveRequest, opts DeriveOptions) (err error) {
	merged, ovWork := filepath.Join(work, "merged"), filepath.Join(work, "work")
	for _, d := range []string{upper, merged, ovWork} {
		if err := os.Mkdir(d, 0o755); err != nil {
			return err
		}
	}
	var mounts undo
	defer func() {
		if uerr := mounts.run(); uerr != nil {
			err = errors.Join(err, fmt.Errorf("unmounting below %s: %w", work, uerr))
		}
	}()
	mount := func(src, target, fstype string, flags uintptr, data string) error {
		if err := unix.Mount(src, target, fstype, flags, data); err != nil {
			what := src
			if fstype != "" && fstype != src {
				what = fstype + " " + src
			}
			return fmt.Errorf("mounting %s on %s: %w", what, target, err)
		}
		mounts.push(func() error {
			err := unix.Unmount(target, 0)
			if errors.Is(err, unix.EBUSY) {
				// A process a maintainer script left behind holds it:
				// detach, so that the work directory can go.
				err = unix.Unmount(target, unix.MNT_DETACH)
			}
			return err
		})
		return nil
	}
	// volatile: the overlay drops every fsync and syncfs of the tools
	// (dpkg syncs its database at each step: 45 times for two small
	// packages, which took 0.3–1.3 s of a busy disk). The upper directory
	// is read into the repository, durably, afterwards; a crash loses only
	// the work directory. A kernel before 5.10 lacks the option: without.
	ovOpts := "lowerdir=" + fsutil.OverlayPath(lower) + ",upperdir=" + fsutil.OverlayPath(upper) + ",workdir=" + fsutil.OverlayPath(ovWork)
	if err := mount("overlay", merged, "overlay", 0, ovOpts+",volatile"); errors.Is(err, unix.EINVAL) {
		err = mount("overlay", merged, "overlay", 0, ovOpts)
		if err != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	in := func(p string) string { return filepath.Join(merged, p) }
	// A composed tree keeps /etc in /usr/etc (docs/compose.md); Debian's
	// tools write /etc. The empty mount point stays in upper and is
	// skipped when the commit is made.
	if err := os.Mkdir(in("etc"), 0o755); err != nil {
		return fmt.Errorf("base tree: %w", err)
	}
	if err := mount(in("usr/etc"), in("etc"), "", unix.MS_BIND, ""); err != nil {
		return err
	}
	for _, d := range []string{"proc", "dev", "tmp", "run", "var"} {
		if err := os.MkdirAll(in(d), 0o755); err != nil {
			return err
		}
	}
	if err := mount("proc", in("proc"), "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	// The host's /dev with its submounts: apt needs /dev/pts for its
	// terminal log. Recursive, so it is detached as a whole.
	if err := unix.Mount("/dev", in("dev"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("binding /dev on %s: %w", in("dev"), err)
	}
	mounts.push(func() error { return unix.Unmount(in("dev"), unix.MNT_DETACH) })
	for _, d := range []string{"tmp", "run", "var"} {
		if err := mount("tmpfs", in(d), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=0755"); err != nil {
			return err
		}
	}
	if err := os.Chmod(in("tmp"), 0o1777); err != nil {
		return err
	}
	if err := prepareVar(in("var")); err != nil {
		return err
	}
	if opts.CacheDir != "" {
		// /var/cache/apt whole: the downloads, and the binary caches of
		// the lists (srcpkgcache.bin), which apt then rebuilds only when
		// the lists changed.
		for _, c := range []struct{ dir, at string }{{"lists", "var/lib/apt/lists"}, {"cache", "var/cache/apt"}} {
			src := filepath.Join(opts.CacheDir, c.dir)
			partial := filepath.Join(src, "partial")
			if c.dir == "cache" {
				partial = filepath.Join(src, "archives", "partial")
			}
			if err := os.MkdirAll(partial, 0o755); err != nil {
				return fmt.Errorf("apt cache: %w", err)
			}
			if err := mount(src, in(c.at), "", unix.MS_BIND, ""); err != nil {
				return err
			}
		}
	}
	if opts.SourceFiles != nil {
		// The node's sources replace the tree's for the run only: a tmpfs
		// over sources.list.d, an empty file over sources.list.
		if err := os.MkdirAll(in("etc/apt/sources.list.d"), 0o755); err != nil {
			return err
		}
		if err := mount("tmpfs", in("etc/apt/sources.list.d"), "tmpfs", 0, "mode=0755"); err != nil {
			return err
		}
		for name, b := range opts.SourceFiles {
			if name != filepath.Base(name) || !(strings.HasSuffix(name, ".list") || strings.HasSuffix(name, ".sources")) {
				return fmt.Errorf("apt source file %q: not a NAME.list or NAME.sources: %w", name, errdefs.ErrInvalid)
			}
			if err := os.WriteFile(in("etc/apt/sources.list.d/"+name), b, 0o644); err != nil {
				return err
			}
		}
		if _, err := os.Lstat(in("etc/apt/sources.list")); err == nil {
			empty := filepath.Join(work, "empty")
			if err := os.WriteFile(empty, nil, 0o644); err != nil {
				return err
			}
			if err := mount(empty, in("etc/apt/sources.list"), "", unix.MS_BIND, ""); err != nil {
				return err
			}
		}
	}
	var debs []string
	for i, d := range q.Local {
		p := fmt.Sprintf("/tmp/strata-layer-%d_%s.deb", i, d.Package)
		if err := copyFile(d.Path, in(p)); err != nil {
			return fmt.Errorf("copying %s into the tree: %w", d.Path, err)
		}
		debs = append(debs, p)
	}
	// apt's own settings for the run (apt-get -c, read after the tree's):
	// no dpkg-preconfigure before unpacking. It asks debconf's questions
	// ahead for interactive frontends; with the noninteractive one the
	// packages' config scripts run when they are configured all the same,
	// and starting it cost 0.2 s per run.
	if err := os.WriteFile(in(aptConf), []byte("#clear DPkg::Pre-Install-Pkgs;\n"), 0o644); err != nil {
		return err
	}
	// No service starts in the chroot (invoke-rc.d's policy).
	policy := in("usr/sbin/policy-rc.d")
	if err := os.WriteFile(policy, []byte("#!/bin/sh\nexit 101\n"), 0o755); err != nil {
		return err
	}
	if err := runTools(ctx, merged, q, debs, opts.Log); err != nil {
		return err
	}
	if err := os.Remove(policy); err != nil {
		return err
	}
	return writeLayerTmpfiles(merged)
}

// aptConf is the apt configuration file of a derivation, in the chroot's
// tmpfs /tmp.
const aptConf = "/tmp/strata-apt.conf"

// prepareVar creates, in the empty /var of the merged view, what dpkg and
// apt need: the database link and apt's state directories.
func prepareVar(v string) error {
	for _, d := range []string{"lib/apt/lists/partial", "cache/apt/archives/partial", "log/apt", "tmp", "roothome"} {
		if err := os.MkdirAll(filepath.Join(v, d), 0o755); err != nil {
			return err
		}
	}
	return os.Symlink("/"+DpkgDatabase, filepath.Join(v, "lib/dpkg"))
}

// toolState are the /var paths of apt and dpkg themselves (lists, caches,
// logs) and of the chroot: not content of the packages, not recreated at
// boot.
var toolState = []string{"/var/lib/apt", "/var/cache/apt", "/var/log/apt", "/var/lib/dpkg", "/var/cache/debconf",
	"/var/cache/ldconfig", "/var/log/dpkg.log", "/var/log/alternatives.log", "/var/tmp", "/var/roothome"}

// writeLayerTmpfiles turns what the packages left in the merged view's
// /var into LayerTmpfilesConf, leaving out what the base's tmpfiles.d
// files create already and the tools' own state.
func writeLayerTmpfiles(merged string) error {
	names, err := readOwnerNames(merged)
	if err != nil {
		return err
	}
	declared, err := declaredTmpfiles(merged, filepath.Base(LayerTmpfilesConf))
	if err != nil {
		return err
	}
	varDir := filepath.Join(merged, "var")
	var lines []string
	err = filepath.WalkDir(varDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == varDir {
			return err
		}
		path := "/var/" + filepath.ToSlash(mustRel(varDir, p))
		if slices.Contains(toolState, path) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if declared[path] {
			return nil
		}
		line, err := tmpfilesLine(p, path, names)
		if err == nil && line != "" {
			lines = append(lines, line)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("reading /var of the layered packages: %w", err)
	}
	if len(lines) == 0 {
		return nil
	}
	body := "# Written by strata: what the layered packages installed in /var, recreated at\n" +
		"# boot because a commit carries an empty /var (docs/layering.md).\n" + strings.Join(lines, "\n") + "\n"
	return os.WriteFile(filepath.Join(merged, LayerTmpfilesConf), []byte(body), 0o644)
}

// runTools runs dpkg and apt-get chrooted in merged.
func runTools(ctx context.Context, merged string, q DeriveRequest, debs []string, log io.Writer) error {
	run := func(what string, args ...string) error {
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: merged, Setpgid: true}
		cmd.Dir = "/"
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "DEBIAN_FRONTEND=noninteractive",
			"DEBCONF_NONINTERACTIVE_SEEN=true", "LC_ALL=C.UTF-8", "HOME=/root", "TMPDIR=/tmp"}
		w := io.Writer(&out)
		if log != nil {
			w = io.MultiWriter(&out, log)
		}
		cmd.Stdout, cmd.Stderr = w, w
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("%s: %s: %w: %s: %w", what, args[0], err, toolReason(out.Bytes()), errdefs.ErrFailedPrecondition)
		}
		return nil
	}
	if len(q.Remove) > 0 {
		if err := run("removing "+strings.Join(q.Remove, ", "),
			append([]string{"dpkg", "--force-unsafe-io", "--purge"}, q.Remove...)...); err != nil {
			return err
		}
	}
	if len(q.Install) == 0 && len(debs) == 0 {
		return nil
	}
	apt := []string{"apt-get", "-q", "-c", aptConf, "-o", "APT::Sandbox::User=root", "-o", "Acquire::Languages=none"}
	if err := run("updating the package lists", append(apt, "update")...); err != nil && len(q.Install) > 0 {
		return err
	}
	names := slices.Clone(q.Install)
	for _, d := range q.Local {
		names = append(names, d.Package)
	}
	// --force-unsafe-io: dpkg's fsyncs are wasted on the upper directory,
	// which is read into the repository (durably) afterwards. --no-remove:
	// apt would resolve a conflict with a base package by removing it;
	// the base only loses what `override remove` names, so that is an error.
	args := append(apt, "install", "-y", "--no-install-recommends", "--no-remove", "-o", "Dpkg::Options::=--force-unsafe-io",
		"-o", "Dpkg::Options::=--force-confdef", "-o", "Dpkg::Options::=--force-confold")
	args = append(append(args, q.Install...), debs...)
	return run("installing "+strings.Join(names, ", "), args...)
}

// toolReason picks the lines of apt's or dpkg's output that say why it
// failed (E:, dpkg: errors and what follows them, unmet dependencies, and
// the last lines a maintainer script printed before dpkg reported it),
// else its last lines.
func toolReason(out []byte) string {
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	keep := make([]bool, len(lines))
	for i, l := range lines {
		t := strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(t, "E: "), strings.HasPrefix(t, "dpkg-deb: "), strings.Contains(t, "Depends:"),
			strings.HasPrefix(t, "The following packages will be REMOVED"),
			strings.Contains(t, "Conflicts:"), strings.Contains(t, "Breaks:"):
			keep[i] = true
		case strings.HasPrefix(t, "dpkg: "):
			keep[i] = true
			if strings.HasPrefix(t, "dpkg: error processing") {
				for j := max(0, i-3); j < i; j++ {
					keep[j] = !strings.HasPrefix(lines[j], "Setting up ") || keep[j]
				}
			}
		case i > 0 && keep[i-1] && strings.HasPrefix(l, " "):
			keep[i] = true
		}
	}
	var pick []string
	for i, l := range lines {
		if keep[i] {
			pick = append(pick, strings.TrimSpace(l))
		}
	}
	if len(pick) == 0 {
		pick = lines[max(0, len(lines)-5):]
	}
	if len(pick) > 15 {
		pick = pick[len(pick)-15:]
	}
	return strings.Join(pick, "; ")
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		return errors.Join(err, out.Close())
	}
	return out.Close()
}

// addedRemoved compares two package lists by name.
func addedRemoved(base, derived []Package) (added, removed []Package) {
	in := func(list []Package, n string) bool {
		return slices.ContainsFunc(list, func(p Package) bool { return p.Name == n })
	}
	for _, p := range derived {
		if !in(base, p.Name) {
			added = append(added, p)
		}
	}
	for _, p := range base {
		if !in(derived, p.Name) {
			removed = append(removed, p)
		}
	}
	return added, removed
}

// layerMetadata is base's metadata for the derived commit: the package
// list replaced, the ref and collection bindings dropped (the commit is
// local to the node and on no ref), the MetaLayer* keys added.
func layerMetadata(base ostree.Metadata, pkgs []Package, q DeriveRequest) ostree.Metadata {
	var m ostree.Metadata
	for _, e := range base {
		switch k, _ := e.Key.(string); k {
		case ostree.MetaRefBinding, ostree.MetaCollectionBinding, MetaLayerRequested, MetaLayerLocal, MetaLayerRemoved:
			continue
		}
		m = append(m, e)
	}
	m.Set(MetaPackages, PackagesVariant(pkgs))
	strs := func(v []string) gvariant.Variant {
		s := slices.Clone(v)
		slices.Sort(s)
		a := make([]any, len(s))
		for i, x := range s {
			a[i] = x
		}
		return gvariant.NewVariant("as", a)
	}
	var local []string
	for _, d := range q.Local {
		local = append(local, d.ID())
	}
	m.Set(MetaLayerRequested, strs(q.Install))
	m.Set(MetaLayerLocal, strs(local))
	m.Set(MetaLayerRemoved, strs(q.Remove))
	return m
}
