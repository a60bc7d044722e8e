// Command sourceinit is the /init of internal/provision's first-boot source test initramfs. It
// mounts devtmpfs, proc and sysfs, loads the boot's modules as prepare-root does, then reads a
// config from the source that the kernel argument strata.source= names, as prepare-root reads it
// on a node's first boot:
//
//   - fwcfg: the first-boot modules (qemu_fw_cfg), then provision.FwCfg;
//   - url: provision.URL for ignition.config.url=, with the network brought up as prepare-root
//     brings it up (the network modules, then prepareroot.BringUpNetwork: DHCP without ip=).
//
// It writes "STRATA-MARK source DIGEST" (or "STRATA-MARK source none") on the marker port
// (ttyS1), then powers off. PID 1 must never exit, so every path ends in power-off.
package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/prepareroot"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
	"golang.org/x/sys/unix"
)

func main() {
	mark := "none"
	if err := run(&mark); err != nil {
		fmt.Fprintf(os.Stderr, "sourceinit: FATAL: %v\n", err)
	} else if f, err := os.OpenFile("/dev/ttyS1", os.O_WRONLY, 0); err == nil {
		fmt.Fprintf(f, "STRATA-MARK source %s\n", mark)
		f.Close()
	}
	time.Sleep(time.Second)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}

func run(mark *string) error {
	for _, m := range []struct{ fs, dir string }{{"devtmpfs", "/dev"}, {"proc", "/proc"}, {"sysfs", "/sys"}} {
		os.Mkdir(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mounting %s: %w", m.dir, err)
		}
	}
	os.MkdirAll("/etc", 0o755)
	prepareroot.LoadModules(os.Stderr, prepareroot.ModulesList)
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	var src provision.Source
	switch which := cmdlineValue(string(cmdline), "strata.source"); which {
	case "fwcfg":
		if n := prepareroot.LoadModules(os.Stderr, prepareroot.FirstBootModulesList); n == 0 {
			return fmt.Errorf("no module of %s loaded", prepareroot.FirstBootModulesList)
		}
		src = provision.FwCfg{}
	case "url":
		src = provision.URL{Cmdline: string(cmdline), Network: func(ctx context.Context) error {
			prepareroot.LoadModules(os.Stderr, prepareroot.NetworkModulesList)
			ip, err := prepareroot.BringUpNetwork(ctx)
			if err == nil {
				fmt.Fprintf(os.Stderr, "sourceinit: network: %s\n", ip)
			}
			return err
		}}
	default:
		return fmt.Errorf("strata.source=%q: want fwcfg or url", which)
	}
	raw, found, err := src.Config(context.Background())
	if err != nil {
		return err
	}
	if found {
		*mark = provconfig.Digest(raw)
	}
	return nil
}

func cmdlineValue(cmdline, key string) string {
	for _, arg := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(arg, key+"="); ok {
			return v
		}
	}
	return ""
}
