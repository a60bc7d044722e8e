package compose

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Stage is a step of a compose, reported as it starts.
type Stage string

// The stages of a compose, in order.
const (
	StageResolve     Stage = "resolve"          // sources, mirror check, apt-get update
	StageInstall     Stage = "download/install" // download (or take from the cache) and install packages
	StagePostProcess Stage = "post-process"
	StageCommit      Stage = "commit"
)

// build is one mmdebstrap run.
type build struct {
	m        *Manifest
	sources  []Source
	suite    string
	target   string // directory mmdebstrap creates
	tmpDir   string // mmdebstrap's TMPDIR
	cacheDir string // .deb cache, "" for none
	epoch    time.Time
	log      io.Writer
	stage    func(Stage)
	program  string
}

// shellSafe reports whether s can be put inside single quotes of a hook.
func shellSafe(s string) bool { return !strings.ContainsAny(s, "'\n\t ") }

// args returns mmdebstrap's command line (docs/compose.md, "How it runs").
func (b *build) args() []string {
	m := b.m
	a := []string{
		"--variant=" + m.Variant, "--mode=root", "--format=directory",
		"--include=" + strings.Join(m.Packages, ","),
	}
	for _, p := range m.PathExclude {
		a = append(a, "--dpkgopt=path-exclude="+p)
	}
	for _, p := range m.PathInclude {
		a = append(a, "--dpkgopt=path-include="+p)
	}
	if b.cacheDir != "" {
		// Keep the .debs of the essential set too, and carry the archive
		// directory in and out of the chroot (mmdebstrap(1), EXAMPLES).
		a = append(a, "--skip=essential/unlink",
			`--setup-hook=mkdir -p "$1"/var/cache/apt/archives`,
			"--setup-hook=sync-in "+b.cacheDir+" /var/cache/apt/archives/",
			"--customize-hook=sync-out /var/cache/apt/archives "+b.cacheDir)
	}
	a = append(a, b.suite, b.target)
	for _, s := range b.sources {
		a = append(a, s.Line())
	}
	return a
}

// run runs mmdebstrap in its own mount namespace, so that the mounts it
// makes in the chroot vanish with it even when it is killed, and in its
// own process group, which is sent SIGTERM on cancellation.
func (b *build) run(ctx context.Context) error {
	if b.cacheDir != "" {
		if !shellSafe(b.cacheDir) {
			return fmt.Errorf("cache directory %q: spaces and quotes are not supported: %w", b.cacheDir, errdefs.ErrInvalid)
		}
		if err := os.MkdirAll(b.cacheDir, 0o755); err != nil {
			return fmt.Errorf("creating package cache: %w", err)
		}
		unlock, err := lockDir(b.cacheDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	prog := b.program
	if prog == "" {
		prog = distro.MmdebstrapCmd
	}
	cmd := exec.Command(prog, b.args()...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.FormatInt(b.epoch.Unix(), 10), "TMPDIR="+b.tmpDir,
		"LC_ALL=C.UTF-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS, Setpgid: true}
	out, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting mmdebstrap (apt-get install mmdebstrap): %w", err)
	}
	pgid := cmd.Process.Pid
	stop := context.AfterFunc(ctx, func() { _ = syscall.Kill(-pgid, syscall.SIGTERM) })
	defer stop()
	errLines := b.scan(out)
	err = cmd.Wait()
	// Whatever is left of the group (a stuck dpkg, a daemon a maintainer
	// script started) must not outlive the tree it works in.
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil {
		return fmt.Errorf("mmdebstrap: %w: %s", err, strings.Join(errLines, "; "))
	}
	return nil
}

// scan copies mmdebstrap's output to the log, reports stages, and returns
// its error lines (the last lines if there is no "E:" line).
func (b *build) scan(r io.Reader) []string {
	var errs, tail []string
	install := false
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if b.log != nil {
			fmt.Fprintln(b.log, l)
		}
		if !install && (strings.HasPrefix(l, "I: downloading packages") || strings.HasPrefix(l, "I: extracting archives")) {
			install = true
			if b.stage != nil {
				b.stage(StageInstall)
			}
		}
		if strings.HasPrefix(l, "E: ") && len(errs) < 10 {
			errs = append(errs, strings.TrimPrefix(l, "E: "))
		}
		tail = append(tail, l)
		if len(tail) > 5 {
			tail = tail[1:]
		}
	}
	_, _ = io.Copy(io.Discard, r)
	if len(errs) == 0 {
		return tail
	}
	return errs
}

// lockDir takes an exclusive flock on dir/.lock, so that composes sharing a
// package cache do not read .debs another one is writing.
func lockDir(dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("locking package cache: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking package cache: %w", err)
	}
	return func() { f.Close() }, nil
}

// removeWorkDir removes a compose's temporary directory. It first detaches
// any mount left below it (mmdebstrap mounts /proc, /sys and /dev/pts in
// the chroot; it runs in its own mount namespace, so none should be
// visible here) and refuses to remove anything while a mount remains.
func removeWorkDir(dir string) error {
	if dir == "" {
		return nil
	}
	for range 3 {
		mounts, err := mountsUnder(dir)
		if err != nil {
			return err
		}
		if len(mounts) == 0 {
			return os.RemoveAll(dir)
		}
		for i := len(mounts) - 1; i >= 0; i-- {
			_ = unix.Unmount(mounts[i], unix.MNT_DETACH)
		}
	}
	return fmt.Errorf("not removing %s: mounts remain below it: %w", dir, errdefs.ErrFailedPrecondition)
}

// mountsUnder lists the mount points at or below dir, outermost first
// (in /proc/self/mountinfo order).
func mountsUnder(dir string) ([]string, error) {
	ms, err := mountinfo.GetMounts(mountinfo.PrefixFilter(filepath.Clean(dir)))
	if err != nil {
		return nil, fmt.Errorf("listing the mounts below %s: %w", dir, err)
	}
	out := make([]string, 0, len(ms))
	for _, m := range ms {
		out = append(out, m.Mountpoint)
	}
	return out, nil
}
