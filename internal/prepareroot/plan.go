package prepareroot

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"unicode"

	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// Layout names the initramfs directories prepare-root works in.
type Layout struct {
	Sysroot string // where root= is mounted; moved to NewRoot/sysroot
	NewRoot string // where the deployment is assembled
	Run     string // the initramfs /run tmpfs, moved to NewRoot/run
}

// DefaultLayout is the layout of strata's initramfs.
var DefaultLayout = Layout{Sysroot: "/sysroot", NewRoot: "/newroot", Run: "/run"}

// Op is the kind of a Step.
type Op string

// Step operations.
const (
	OpBind       Op = "bind"        // bind-mount Source on Target
	OpRemountRO  Op = "remount-ro"  // make the bind mount at Target read-only
	OpMove       Op = "move"        // move the mount at Source to Target
	OpCreateFile Op = "create-file" // create the empty file Target
	OpWriteFile  Op = "write-file"  // write Data to the file Target (and its missing parents)
)

// Step is one idempotent-enough action of a Plan; paths are host paths.
type Step struct {
	Op     Op
	Source string
	Target string
	Data   string // OpWriteFile's content
}

func (s Step) String() string {
	switch s.Op {
	case OpRemountRO, OpCreateFile, OpWriteFile:
		return fmt.Sprintf("%s %s", s.Op, s.Target)
	}
	return fmt.Sprintf("%s %s %s", s.Op, s.Source, s.Target)
}

// Mounter performs mount(2) calls; the real one is UnixMounter.
type Mounter interface {
	Mount(source, target, fstype string, flags uintptr, data string) error
}

// Plan returns the steps that turn the physical root mounted at l.Sysroot
// into the new root at l.NewRoot (docs/formats/sysroot.md), and the
// deployment it boots (zero when cfg has no ostree=, in which case the
// physical root itself becomes the new root). Plan only reads the
// filesystem; it checks every mount point the steps need.
func Plan(l Layout, cfg Config) (Deployment, []Step, error) {
	if cfg.OSTree == "" {
		if err := isDir(filepath.Join(l.Sysroot, "run")); err != nil {
			return Deployment{}, nil, fmt.Errorf("root filesystem has no /run mount point: %w", err)
		}
		return Deployment{}, []Step{
			{Op: OpMove, Source: l.Sysroot, Target: l.NewRoot},
			{Op: OpMove, Source: l.Run, Target: filepath.Join(l.NewRoot, "run")},
		}, nil
	}
	d, err := ResolveDeployment(l.Sysroot, cfg.OSTree)
	if err != nil {
		return Deployment{}, nil, err
	}
	for _, mp := range []string{"usr", "var", "sysroot", "run", "dev", "proc", "sys"} {
		if err := isDir(filepath.Join(d.Dir, mp)); err != nil {
			return Deployment{}, nil, fmt.Errorf("deployment %s has no /%s mount point: %w", d.Name, mp, err)
		}
	}
	nr := func(p string) string { return filepath.Join(l.NewRoot, p) }
	steps := []Step{
		{Op: OpBind, Source: d.Dir, Target: l.NewRoot},
		{Op: OpBind, Source: nr("usr"), Target: nr("usr")},
		{Op: OpRemountRO, Target: nr("usr")},
		{Op: OpBind, Source: d.Var, Target: nr("var")},
	}
	// /boot on the root filesystem (boot/loader is then a symlink there):
	// bind it so the deployment sees the boot entries (as ostree-prepare-root does).
	if fi, err := os.Lstat(filepath.Join(l.Sysroot, "boot", "loader")); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
		if isDir(filepath.Join(d.Dir, "boot")) == nil {
			steps = append(steps, Step{Op: OpBind, Source: filepath.Join(l.Sysroot, "boot"), Target: nr("boot")})
		}
	}
	steps = append(steps, Step{Op: OpCreateFile, Target: filepath.Join(l.Run, "ostree-booted")})
	if unit, ok := varMountUnit(l, d); ok {
		steps = append(steps, Step{Op: OpWriteFile, Target: filepath.Join(l.Run, "systemd", "system", "var.mount"), Data: unit})
	}
	steps = append(steps,
		Step{Op: OpMove, Source: l.Sysroot, Target: nr("sysroot")},
		Step{Op: OpMove, Source: l.Run, Target: nr("run")},
	)
	return d, steps, nil
}

// varMountUnit is the unit file of the /var bind mount made here, for systemd to load from
// /run/systemd/system after the switch (as ostree's generator writes one). Without a unit
// file, the mount is known to systemd from the mount table alone, and RequiresMountsFor=
// then orders after it without requiring it: systemd-journal-flush.service (which has no
// default dependencies) is not stopped before /var is unmounted at shutdown, journald keeps
// /var/log/journal open, and the unmount fails ("Failed unmounting var.mount").
// A stateroot name that a unit file cannot hold as it is (whitespace, control characters,
// a backslash: a line break or continuation would add settings) gets no unit: ok is false,
// and only the clean unmount at shutdown is lost.
func varMountUnit(l Layout, d Deployment) (unit string, ok bool) {
	what := d.Var
	if rel, err := filepath.Rel(l.Sysroot, d.Var); err == nil && !strings.HasPrefix(rel, "..") {
		what = filepath.Join("/sysroot", rel) // where the physical root is after the switch
	}
	if strings.ContainsFunc(what, func(r rune) bool { return r == '\\' || unicode.IsSpace(r) || unicode.IsControl(r) }) {
		return "", false
	}
	return `# Written by strata prepare-root, which bind-mounted /var before systemd started.
[Unit]
Description=The stateroot's /var
DefaultDependencies=no
Conflicts=umount.target
Before=local-fs.target umount.target

[Mount]
What=` + strings.ReplaceAll(what, "%", "%%") + `
Where=/var
Options=bind
`, true
}

// Apply runs the steps in order and stops at the first error.
func Apply(m Mounter, steps []Step) error {
	for _, s := range steps {
		var err error
		switch s.Op {
		case OpBind:
			err = m.Mount(s.Source, s.Target, "", unix.MS_BIND, "")
		case OpRemountRO:
			err = m.Mount("", s.Target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, "")
		case OpMove:
			err = m.Mount(s.Source, s.Target, "", unix.MS_MOVE, "")
		case OpWriteFile:
			if err = os.MkdirAll(filepath.Dir(s.Target), 0o755); err == nil {
				err = os.WriteFile(s.Target, []byte(s.Data), 0o644)
			}
		case OpCreateFile:
			var f *os.File
			if f, err = os.OpenFile(s.Target, os.O_WRONLY|os.O_CREATE, 0o644); err == nil {
				err = f.Close()
			}
		default:
			err = fmt.Errorf("internal error: unknown step %q: %w", s.Op, errdefs.ErrInvalid)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s, err)
		}
	}
	return nil
}

// UnixMounter is the Mounter of the running kernel.
type UnixMounter struct{}

var _ Mounter = UnixMounter{}

// Mount calls mount(2). A read-only bind remount keeps the flags the mount
// already has (nosuid, nodev, noexec, atime), which the kernel would
// otherwise reset or refuse to drop.
func (UnixMounter) Mount(source, target, fstype string, flags uintptr, data string) error {
	if flags&unix.MS_REMOUNT != 0 && flags&unix.MS_BIND != 0 {
		var st unix.Statfs_t
		if err := unix.Statfs(target, &st); err != nil {
			return fmt.Errorf("statfs %s: %w", target, err)
		}
		flags |= keptFlags(uint64(st.Flags))
	}
	if err := unix.Mount(source, target, fstype, flags, data); err != nil {
		return &os.PathError{Op: "mount", Path: target, Err: err}
	}
	return nil
}

// keptFlags maps statfs f_flags (ST_*) to the per-mount MS_* flags a bind
// remount must repeat.
func keptFlags(st uint64) uintptr {
	var f uintptr
	for _, m := range []struct {
		st uint64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st&m.st != 0 {
			f |= m.ms
		}
	}
	return f
}
