package prepareroot

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// ModulesList is the initramfs file naming the kernel modules to load, one
// absolute path per line, dependencies first (written by internal/initramfs).
const ModulesList = "/etc/initrd-modules"

// failDelay is how long a fatal message stays on the console before the
// machine powers off or reboots.
const failDelay = 2 * time.Second

// rootPoll is the interval at which the root device is looked for.
const rootPoll = 50 * time.Millisecond

// errNotPID1 is returned when the initramfs program runs outside an initramfs.
var errNotPID1 = errors.New("not running as PID 1 of an initramfs")

// errBreak stops the boot on rd.break.
var errBreak = errors.New("rd.break: stopped before switch_root")

// Provisioner applies a node's first-boot config to the assembled deployment
// before switch_root, so that its users, files and units exist when systemd
// starts. physRoot is the physical root (where the first-boot mark lives) and
// newRoot the deployment. It reports whether it found anything to do; an error
// stops the boot. The wiring layer passes internal/provision's implementation.
type Provisioner interface {
	Provision(ctx context.Context, con io.Writer, physRoot, newRoot string) (ran bool, err error)
}

// Init is the initramfs /init: it prepares the deployment, provisions it on
// its first boot when p is not nil, and executes its init. It returns only
// when it is not PID 1 (the caller then exits with an error); as PID 1 it
// never returns: after a fatal error it powers off, or reboots with
// initrd.onfail=reboot.
func Init(p Provisioner) error {
	if os.Getpid() != 1 {
		return fmt.Errorf("cannot run prepare-root: %w: %w", errNotPID1, errdefs.ErrFailedPrecondition)
	}
	start := time.Now()
	var con io.Writer = os.Stderr
	err := mountAPI()
	if c, cerr := os.OpenFile("/dev/console", os.O_RDWR|unix.O_NOCTTY, 0); cerr == nil {
		con = c
		for fd := 0; fd <= 2; fd++ {
			unix.Dup3(int(c.Fd()), fd, 0)
		}
	}
	onFail := FailPoweroff
	if err == nil {
		onFail, err = boot(con, start, p)
	}
	if errors.Is(err, errBreak) {
		fmt.Fprintf(con, "strata prepare-root: %v\n", err)
	} else {
		fmt.Fprintf(con, "strata prepare-root: FATAL: %v\n", err)
	}
	halt(onFail)
	return nil // not reached
}

// mountAPI mounts /dev, /proc, /sys and /run in the initramfs; the kernel's
// devtmpfs automount does not apply to an initramfs (docs/vm.md).
func mountAPI() error {
	for _, m := range []struct {
		fstype, target string
		flags          uintptr
		data           string
	}{
		{"devtmpfs", "/dev", unix.MS_NOSUID, "mode=0755"},
		{"proc", "/proc", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"sysfs", "/sys", unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC, ""},
		{"tmpfs", "/run", unix.MS_NOSUID | unix.MS_NODEV, "mode=0755"},
	} {
		if err := os.MkdirAll(m.target, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(m.fstype, m.target, m.fstype, m.flags, m.data); err != nil {
			return fmt.Errorf("mounting %s on %s: %w", m.fstype, m.target, err)
		}
	}
	return nil
}

// boot runs everything after the API mounts; it returns only on error.
func boot(con io.Writer, start time.Time, p Provisioner) (FailAction, error) {
	tStart := time.Now()
	nmods := loadModules(con, ModulesList)
	tMods := time.Now()
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return FailPoweroff, fmt.Errorf("reading kernel command line: %w", err)
	}
	cfg, err := ParseCmdline(string(raw))
	if err != nil {
		return FailPoweroff, fmt.Errorf("kernel command line: %w", err)
	}
	dev, err := waitRoot(DefaultBlockDevices, cfg)
	if err != nil {
		return cfg.OnFail, err
	}
	tDev := time.Now()
	l := DefaultLayout
	var flags uintptr
	if cfg.ReadOnly {
		flags |= unix.MS_RDONLY
	}
	if err := unix.Mount(dev, l.Sysroot, cfg.RootFSType, flags, cfg.RootFlags); err != nil {
		return cfg.OnFail, fmt.Errorf("mounting root %s (%s) on %s: %w", dev, cfg.RootFSType, l.Sysroot, err)
	}
	d, steps, err := Plan(l, cfg)
	if err != nil {
		return cfg.OnFail, err
	}
	if err := Apply(UnixMounter{}, steps); err != nil {
		return cfg.OnFail, err
	}
	if cfg.Break {
		for _, s := range steps {
			fmt.Fprintf(con, "strata prepare-root: step: %s\n", s)
		}
		if mi, err := os.ReadFile("/proc/self/mountinfo"); err == nil {
			con.Write(mi)
		}
		return cfg.OnFail, errBreak
	}
	what := "root " + dev
	if d.Name != "" {
		what = "deployment " + d.Name
	}
	if p != nil && d.Name != "" {
		tProv := time.Now()
		ran, err := p.Provision(context.Background(), con, filepath.Join(l.NewRoot, "sysroot"), l.NewRoot)
		if err != nil {
			// The mark stays: the node does not go on into a half-configured system.
			return cfg.OnFail, fmt.Errorf("provisioning failed: %w", err)
		}
		if ran {
			fmt.Fprintf(con, "strata prepare-root: provisioned %s in %d ms\n", what, time.Since(tProv).Milliseconds())
		}
	}
	now := time.Now()
	fmt.Fprintf(con, "strata prepare-root: %s ready in %d ms\n", what, now.Sub(start).Milliseconds())
	fmt.Fprintf(con, "strata prepare-root: %d modules %d ms, root device %d ms, mounts %d ms\n", nmods,
		tMods.Sub(tStart).Milliseconds(), tDev.Sub(tMods).Milliseconds(), now.Sub(tDev).Milliseconds())
	return cfg.OnFail, switchRoot(l.NewRoot, cfg.Init)
}

// loadModules loads the modules listed in file in order and returns how many
// loaded. A module that fails to load is reported and skipped: the root mount
// then fails with a clearer error if it was needed.
func loadModules(con io.Writer, file string) int {
	f, err := os.Open(file)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			fmt.Fprintf(con, "strata prepare-root: reading %s: %v\n", file, err)
		}
		return 0
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := strings.TrimSpace(sc.Text())
		if p == "" || strings.HasPrefix(p, "#") {
			continue
		}
		if err := loadModule(p); err != nil {
			fmt.Fprintf(con, "strata prepare-root: loading module %s: %v\n", p, err)
			continue
		}
		n++
	}
	return n
}

func loadModule(p string) error {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	flags := 0
	if ext := filepath.Ext(p); ext == ".xz" || ext == ".zst" || ext == ".gz" {
		flags |= unix.MODULE_INIT_COMPRESSED_FILE
	}
	if err := unix.FinitModule(fd, "", flags); err != nil && !errors.Is(err, unix.EEXIST) {
		return err
	}
	return nil
}

// waitRoot polls for the root device until cfg.Timeout.
func waitRoot(b BlockDevices, cfg Config) (string, error) {
	deadline := time.Now().Add(cfg.Timeout)
	for {
		dev, err := b.FindRootDevice(cfg.Root)
		if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
			return dev, err
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("root device root=%s did not appear within %s (rd.timeout=): %w", cfg.Root, cfg.Timeout, err)
		}
		time.Sleep(rootPoll)
	}
}

// switchRoot moves the API filesystems into newRoot, deletes the initramfs,
// makes newRoot the root and executes init there.
func switchRoot(newRoot, init string) error {
	for _, d := range []string{"/dev", "/proc", "/sys"} {
		if err := unix.Mount(d, filepath.Join(newRoot, d), "", unix.MS_MOVE, ""); err != nil {
			return fmt.Errorf("moving %s into the new root: %w", d, err)
		}
	}
	if err := unix.Chdir(newRoot); err != nil {
		return fmt.Errorf("entering the new root: %w", err)
	}
	// The initramfs (rootfs) cannot be unmounted; free its memory instead,
	// after making sure / is one (as busybox switch_root does).
	var sfs unix.Statfs_t
	if err := unix.Statfs("/", &sfs); err != nil {
		return fmt.Errorf("statfs /: %w", err)
	}
	if sfs.Type != unix.RAMFS_MAGIC && sfs.Type != unix.TMPFS_MAGIC {
		return fmt.Errorf("/ is not an initramfs (filesystem type %#x): %w", sfs.Type, errdefs.ErrFailedPrecondition)
	}
	if err := removeTree("/"); err != nil {
		return fmt.Errorf("deleting the initramfs: %w", err)
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("moving the new root onto /: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot into the new root: %w", err)
	}
	if err := unix.Chdir("/"); err != nil {
		return err
	}
	if _, err := os.Stat(init); err != nil && init == DefaultInit {
		init = FallbackInit
	}
	err := unix.Exec(init, []string{init}, os.Environ())
	return fmt.Errorf("executing %s: %w", init, err)
}

// removeTree deletes the contents of dir that lie on dir's filesystem; it
// never descends into mount points (another st_dev).
func removeTree(dir string) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return err
	}
	return removeOnDev(dir, st.Dev)
}

func removeOnDev(dir string, dev uint64) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			errs = append(errs, err)
			continue
		}
		if st.Dev != dev {
			continue // a mount point
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := removeOnDev(p, dev); err != nil {
				errs = append(errs, err)
				continue
			}
			// A directory holding a mount point stays (EBUSY/ENOTEMPTY).
			if err := unix.Rmdir(p); err != nil && !errors.Is(err, unix.EBUSY) && !errors.Is(err, unix.ENOTEMPTY) {
				errs = append(errs, &os.PathError{Op: "rmdir", Path: p, Err: err})
			}
			continue
		}
		if err := unix.Unlink(p); err != nil {
			errs = append(errs, &os.PathError{Op: "unlink", Path: p, Err: err})
		}
	}
	return errors.Join(errs...)
}

// halt waits for the console to be read, then powers off or reboots. PID 1
// must never exit (the kernel would panic), so it sleeps if that fails.
func halt(a FailAction) {
	time.Sleep(failDelay)
	unix.Sync()
	cmd := unix.LINUX_REBOOT_CMD_POWER_OFF
	if a == FailReboot {
		cmd = unix.LINUX_REBOOT_CMD_RESTART
	}
	unix.Reboot(cmd)
	for {
		time.Sleep(time.Hour)
	}
}
