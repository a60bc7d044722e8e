package prepareroot

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// FailAction is what PID 1 does after a fatal error (initrd.onfail=).
type FailAction string

// Actions after a fatal error.
const (
	FailPoweroff FailAction = "poweroff"
	FailReboot   FailAction = "reboot"
)

// Defaults of the kernel command line keys.
const (
	DefaultRootFSType = "ext4"
	DefaultInit       = "/sbin/init"
	// FallbackInit is tried when DefaultInit is missing in the deployment.
	FallbackInit   = "/lib/systemd/systemd"
	DefaultTimeout = 10 * time.Second
)

// Config is what prepare-root reads from the kernel command line.
type Config struct {
	Root       string        // root=: /dev/..., LABEL=, UUID=, PARTLABEL=, PARTUUID=
	RootFSType string        // rootfstype=, default ext4
	RootFlags  string        // rootflags=, passed as mount data
	ReadOnly   bool          // ro mounts the physical root read-only; rw (the default) writable
	OSTree     string        // ostree=: /ostree/boot.N/OS/BOOTCSUM/SERIAL or /ostree/deploy/OS/deploy/CSUM.SERIAL
	Init       string        // init=, default /sbin/init (then /lib/systemd/systemd)
	Break      bool          // rd.break: stop before switch_root
	OnFail     FailAction    // initrd.onfail=reboot|poweroff, default poweroff
	Timeout    time.Duration // rd.timeout= (seconds): how long to wait for the root device
}

// ParseCmdline parses a kernel command line such as the contents of
// /proc/cmdline. As in the kernel, values may be double-quoted, the last
// occurrence of a key wins and everything after "--" belongs to init. Unknown
// keys are ignored; malformed values of known keys are errors.
func ParseCmdline(s string) (Config, error) {
	cfg := Config{
		RootFSType: DefaultRootFSType,
		Init:       DefaultInit,
		OnFail:     FailPoweroff,
		Timeout:    DefaultTimeout,
	}
	for _, arg := range splitCmdline(s) {
		if arg == "--" {
			break
		}
		key, val, hasVal := strings.Cut(arg, "=")
		switch key {
		case "root":
			cfg.Root = val
		case "rootfstype":
			cfg.RootFSType = val
		case "rootflags":
			cfg.RootFlags = val
		case "ro":
			cfg.ReadOnly = true
		case "rw":
			cfg.ReadOnly = false
		case "ostree":
			cfg.OSTree = val
		case "init":
			cfg.Init = val
		case "rd.break":
			// rd.break alone or rd.break=pre-pivot (dracut's name of the same place).
			cfg.Break = !hasVal || val == "" || val == "pre-pivot" || val == "1"
		case "initrd.onfail":
			switch FailAction(val) {
			case FailPoweroff, FailReboot:
				cfg.OnFail = FailAction(val)
			default:
				return Config{}, fmt.Errorf("initrd.onfail=%q: want reboot or poweroff: %w", val, errdefs.ErrInvalid)
			}
		case "rd.timeout":
			n, err := strconv.ParseUint(val, 10, 32)
			if err != nil {
				return Config{}, fmt.Errorf("rd.timeout=%q: want a number of seconds: %w", val, errdefs.ErrInvalid)
			}
			cfg.Timeout = time.Duration(n) * time.Second
		}
	}
	if cfg.Root == "" {
		return Config{}, fmt.Errorf("no root= on the kernel command line: %w", errdefs.ErrInvalid)
	}
	if cfg.RootFSType == "" {
		return Config{}, fmt.Errorf("rootfstype= is empty: %w", errdefs.ErrInvalid)
	}
	if cfg.Init == "" || !strings.HasPrefix(cfg.Init, "/") {
		return Config{}, fmt.Errorf("init=%q: want an absolute path: %w", cfg.Init, errdefs.ErrInvalid)
	}
	return cfg, nil
}

// splitCmdline splits a command line at unquoted blanks and removes the
// double quotes, as the kernel's next_arg does.
func splitCmdline(s string) []string {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
		quote bool
	)
	for _, r := range s {
		switch {
		case r == '"':
			quote = !quote
			inArg = true
		case !quote && (r == ' ' || r == '\t' || r == '\n' || r == '\r'):
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
