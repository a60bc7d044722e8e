package vm

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// Accel is a QEMU accelerator.
type Accel string

const (
	// AccelAuto is KVM when STRATA_VM_ACCEL=kvm and TCG otherwise: a working /dev/kvm is only
	// proven by booting a kernel, which the caller does (vmtest.Accel), not by a probe.
	AccelAuto Accel = ""
	AccelTCG  Accel = "tcg"
	AccelKVM  Accel = "kvm"
)

// AccelEnv names the environment variable that overrides the accelerator (kvm or tcg).
const AccelEnv = "STRATA_VM_ACCEL"

// Default file locations of Debian's packages.
const (
	DefaultQEMU         = "qemu-system-x86_64"              // qemu-system-x86
	DefaultOVMFCode     = "/usr/share/OVMF/OVMF_CODE_4M.fd" // ovmf
	DefaultOVMFVars     = "/usr/share/OVMF/OVMF_VARS_4M.fd" // ovmf
	DefaultMemoryMiB    = 1024
	DefaultTimeout      = 5 * time.Minute
	DefaultExitTimeout  = 30 * time.Second
	defaultPollInterval = 100 * time.Millisecond
)

// DefaultFailures are the console patterns that end a run as a failure.
var DefaultFailures = []string{`Kernel panic`, `FATAL`}

// DefaultMilestones are the console and marker patterns whose first appearance is recorded.
var DefaultMilestones = []string{
	`BdsDxe: starting`, `Linux version`, `Run /init`, `prepare-root`, `systemd\[1\]`,
}

// Disk is a drive attached as a virtio block device (/dev/vda, /dev/vdb, ... in order).
type Disk struct {
	Path string
	// Format is the QEMU image format; "" means raw.
	Format string
	// Snapshot discards the guest's writes (QEMU snapshot=on), so the image can be reused
	// and shared by parallel runs.
	Snapshot bool
}

// Forward is a TCP port of the host's loopback interface that QEMU's user network forwards to
// a port of the guest.
type Forward struct {
	HostPort, GuestPort int
}

// UEFI boots through OVMF.
type UEFI struct {
	// Code is the firmware, mapped read-only; "" means DefaultOVMFCode.
	Code string
	// Vars is the machine's writable variable store. If it does not exist it is created from
	// VarsTemplate; it persists across runs, which boot counting needs. "" means a fresh copy
	// for this run only.
	Vars string
	// VarsTemplate is the pristine store; "" means DefaultOVMFVars.
	VarsTemplate string
}

// Config describes one machine. The zero value of each knob is a working default.
type Config struct {
	QEMU  string // "" means DefaultQEMU found on PATH
	Disks []Disk

	// Exactly one of UEFI or Kernel: firmware boot from the first disk, or direct kernel boot
	// (Kernel may be a bzImage or an uncompressed vmlinux, which boots through PVH and skips
	// the in-guest decompression: ExtractVmlinux).
	UEFI   *UEFI
	Kernel string
	Initrd string
	Append string

	MemoryMiB int   // 0 means DefaultMemoryMiB
	SMP       int   // 0 means min(2, host cores); TCG never gets more than the host's cores
	Accel     Accel // AccelAuto resolves through STRATA_VM_ACCEL, else TCG

	// Net adds user networking: the guest reaches the host at 10.0.2.2.
	Net bool
	// Forwards (with Net) make QEMU listen on loopback ports of the host and forward their
	// connections to ports of the guest, e.g. the guest's sshd.
	Forwards []Forward
	// AllowReboot keeps QEMU running across guest reboots (boot counting); by default a guest
	// reboot ends QEMU like a power-off (-no-reboot).
	AllowReboot bool
	// Control adds the control port (guest ttyS2) for Machine.Send and Machine.Exec.
	Control bool

	// ConsoleLog and MarkerLog are the files behind ttyS0 and ttyS1; "" puts them in a
	// directory removed when the run ends.
	ConsoleLog string
	MarkerLog  string
	// ConsoleOut, if set, gets a copy of the console as the watcher reads it (every 100 ms).
	ConsoleOut io.Writer

	// Until are patterns over marker-port lines: the first match makes the run a success
	// (ReasonMarker), after which QEMU has ExitTimeout to exit by itself before it is killed.
	// With no patterns the run lasts until QEMU exits.
	Until       []string
	ExitTimeout time.Duration // 0 means DefaultExitTimeout
	// Failures are console patterns that end the run at once (nil means DefaultFailures; an
	// empty non-nil slice means none).
	Failures []string
	// Milestones are recorded the first time they show up on the console or marker port
	// (nil means DefaultMilestones).
	Milestones []string
	// Timeout bounds the whole run from QEMU's start; 0 means DefaultTimeout.
	Timeout time.Duration

	// ExtraArgs are appended to QEMU's command line.
	ExtraArgs []string
}

// resolveAccel picks the accelerator: the environment override, the config, then TCG.
func resolveAccel(a Accel, env string) (Accel, error) {
	switch Accel(env) {
	case AccelTCG, AccelKVM:
		return Accel(env), nil
	case "":
	default:
		return "", fmt.Errorf("%s=%q: want kvm or tcg: %w", AccelEnv, env, errdefs.ErrInvalid)
	}
	switch a {
	case AccelAuto:
		return AccelTCG, nil
	case AccelTCG, AccelKVM:
		return a, nil
	}
	return "", fmt.Errorf("accelerator %q: want kvm or tcg: %w", a, errdefs.ErrInvalid)
}

// smp returns the vCPU count: under multi-threaded TCG more vCPUs than host cores soft-lock
// the guest (docs/vm.md).
func smp(want, hostCores int, accel Accel) int {
	if want <= 0 {
		want = min(2, hostCores)
	}
	if accel == AccelTCG && want > hostCores {
		want = hostCores
	}
	return max(want, 1)
}

// files are the per-run paths args needs.
type files struct {
	console, markers, vars, control string
}

// qemuEscape doubles commas, QEMU's option-value escape.
func qemuEscape(s string) string { return strings.ReplaceAll(s, ",", ",,") }

// validate checks what args cannot default.
func (c *Config) validate() error {
	if (c.UEFI != nil) == (c.Kernel != "") {
		return fmt.Errorf("machine needs exactly one of UEFI or a kernel: %w", errdefs.ErrInvalid)
	}
	if c.UEFI != nil && len(c.Disks) == 0 {
		return fmt.Errorf("UEFI boot needs a disk: %w", errdefs.ErrInvalid)
	}
	if c.Kernel == "" && (c.Initrd != "" || c.Append != "") {
		return fmt.Errorf("initrd and kernel arguments need a kernel: %w", errdefs.ErrInvalid)
	}
	if len(c.Forwards) > 0 && !c.Net {
		return fmt.Errorf("port forwards need the user network (Net): %w", errdefs.ErrInvalid)
	}
	for _, f := range c.Forwards {
		if f.HostPort < 1 || f.HostPort > 65535 || f.GuestPort < 1 || f.GuestPort > 65535 {
			return fmt.Errorf("port forward %d->%d: ports are 1 to 65535: %w", f.HostPort, f.GuestPort, errdefs.ErrInvalid)
		}
	}
	return nil
}

// args builds QEMU's command line (without the program name).
func (c *Config) args(accel Accel, hostCores int, f files) []string {
	mem := c.MemoryMiB
	if mem <= 0 {
		mem = DefaultMemoryMiB
	}
	a := []string{"-M", "q35", "-m", strconv.Itoa(mem), "-smp", strconv.Itoa(smp(c.SMP, hostCores, accel))}
	switch accel {
	case AccelKVM:
		a = append(a, "-accel", "kvm", "-cpu", "host")
	default:
		a = append(a, "-accel", "tcg,thread=multi", "-cpu", "max")
	}
	a = append(a, "-nodefaults", "-no-user-config", "-display", "none")
	if !c.AllowReboot {
		a = append(a, "-no-reboot")
	}
	a = append(a,
		"-chardev", "file,id=ttyS0,path="+qemuEscape(f.console), "-serial", "chardev:ttyS0",
		"-chardev", "file,id=ttyS1,path="+qemuEscape(f.markers), "-serial", "chardev:ttyS1")
	if f.control != "" {
		// QEMU connects to the host's listening socket at startup (client mode), so nothing the
		// host sends can race QEMU's creation of the socket.
		a = append(a, "-chardev", "socket,id=ttyS2,path="+qemuEscape(f.control), "-serial", "chardev:ttyS2")
	}
	if c.UEFI != nil {
		code := c.UEFI.Code
		if code == "" {
			code = DefaultOVMFCode
		}
		a = append(a,
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+qemuEscape(code),
			"-drive", "if=pflash,format=raw,unit=1,file="+qemuEscape(f.vars))
	} else {
		a = append(a, "-kernel", c.Kernel)
		if c.Initrd != "" {
			a = append(a, "-initrd", c.Initrd)
		}
		if c.Append != "" {
			a = append(a, "-append", c.Append)
		}
	}
	for _, d := range c.Disks {
		format := d.Format
		if format == "" {
			format = "raw"
		}
		opt := "file=" + qemuEscape(d.Path) + ",if=virtio,format=" + format
		if d.Snapshot {
			opt += ",snapshot=on"
		}
		a = append(a, "-drive", opt)
	}
	if c.Net {
		netdev := "user,id=n0"
		for _, f := range c.Forwards {
			netdev += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", f.HostPort, f.GuestPort)
		}
		a = append(a, "-netdev", netdev, "-device", "virtio-net-pci,netdev=n0")
	}
	return append(a, c.ExtraArgs...)
}

// hostCores is the number of CPUs this process may use.
func hostCores() int { return runtime.NumCPU() }
