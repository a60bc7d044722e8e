// Command urlinit is the /init of internal/provision's ignition.config.url= test initramfs. It
// mounts devtmpfs, proc and sysfs, loads the boot's modules, then asks provision.URL for the config named on the kernel
// command line with the network brought up as prepare-root brings it up (the modules of
// prepareroot.NetworkModulesList, then prepareroot.BringUpNetwork: DHCP when there is no ip=),
// and writes "STRATA-MARK url DIGEST" (or "STRATA-MARK url none") on the marker port (ttyS1),
// then powers off. PID 1 must never exit, so every path ends in power-off.
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/strata-os/strata/internal/prepareroot"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/provision"
	"golang.org/x/sys/unix"
)

func main() {
	mark := "none"
	if err := run(&mark); err != nil {
		fmt.Fprintf(os.Stderr, "urlinit: FATAL: %v\n", err)
	} else if f, err := os.OpenFile("/dev/ttyS1", os.O_WRONLY, 0); err == nil {
		fmt.Fprintf(f, "STRATA-MARK url %s\n", mark)
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
	// The boot's modules first, as prepare-root loads them (virtio_pci, the bus of QEMU's card).
	prepareroot.LoadModules(os.Stderr, prepareroot.ModulesList)
	cmdline, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return err
	}
	src := provision.URL{Cmdline: string(cmdline), Network: func(ctx context.Context) error {
		prepareroot.LoadModules(os.Stderr, prepareroot.NetworkModulesList)
		ip, err := prepareroot.BringUpNetwork(ctx)
		if err == nil {
			fmt.Fprintf(os.Stderr, "urlinit: network: %s\n", ip)
		}
		return err
	}}
	raw, found, err := src.Config(context.Background())
	if err != nil {
		return err
	}
	if found {
		*mark = provconfig.Digest(raw)
	}
	return nil
}
