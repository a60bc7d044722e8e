// Command fwcfginit is the /init of internal/provision's fw_cfg test initramfs. It mounts
// devtmpfs and sysfs, loads the modules of prepareroot.FirstBootModulesList as prepare-root
// does on a node's first boot, reads the config from QEMU's fw_cfg with provision.FwCfg and
// writes "STRATA-MARK fwcfg DIGEST" (or "STRATA-MARK fwcfg none") on the marker port (ttyS1),
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
		fmt.Fprintf(os.Stderr, "fwcfginit: FATAL: %v\n", err)
	} else if f, err := os.OpenFile("/dev/ttyS1", os.O_WRONLY, 0); err == nil {
		fmt.Fprintf(f, "STRATA-MARK fwcfg %s\n", mark)
		f.Close()
	}
	time.Sleep(time.Second)
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
	for {
		time.Sleep(time.Hour)
	}
}

func run(mark *string) error {
	for _, m := range []struct{ fs, dir string }{{"devtmpfs", "/dev"}, {"sysfs", "/sys"}} {
		os.Mkdir(m.dir, 0o755)
		if err := unix.Mount(m.fs, m.dir, m.fs, 0, ""); err != nil {
			return fmt.Errorf("mounting %s: %w", m.dir, err)
		}
	}
	if n := prepareroot.LoadModules(os.Stderr, prepareroot.FirstBootModulesList); n == 0 {
		return fmt.Errorf("no module of %s loaded", prepareroot.FirstBootModulesList)
	}
	raw, found, err := provision.FwCfg{}.Config(context.Background())
	if err != nil {
		return err
	}
	if found {
		*mark = provconfig.Digest(raw)
	}
	return nil
}
