package cli

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/boot"
	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/distro"
	"github.com/strata-os/strata/internal/sysroot"
)

func newBootCompleteCmd() *cobra.Command {
	var (
		path, esp, root, cmdline string
		timeout                  time.Duration
		asJSON, reboot           bool
	)
	cmd := &cobra.Command{
		Use:   "boot-complete [--sysroot /] [--esp " + distro.ESPMountPoint + "]",
		Short: "Run the health checks and mark the booted deployment good",
		Long: `Run the health checks (the executables in ` + strings.Join(distro.HealthDirs, " and\n") + `, by name, each with --timeout). If one fails, exit 1
naming it and change nothing: the boot entry stays counted, and firmware falls
back to the previous deployment once its tries are used up. Otherwise remove
the boot counter of the booted deployment's ESP entry, and if firmware had
fallen back (the default deployment's entry has no tries left), roll back so
that the booted deployment is the default again. strata-boot-complete.service
runs it before boot-complete.target.

With --reboot-on-failure, a failed check on a boot whose entry is on trial
(still has a boot counter) reboots the machine at once, like greenboot's red
boot: each reboot uses up one try until firmware falls back by itself. A boot
that is not on trial (a blessed entry, a fallback) stays up with the failure
reported: rebooting it would only repeat the failure.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkNodeESP(path, esp); err != nil {
				return fmt.Errorf("cannot complete the boot: %w", err)
			}
			opts := []sysroot.Option{sysroot.WithBootloader(espSync(esp, bootloader.DefaultTries))}
			if cmdline != "" {
				opts = append(opts, sysroot.WithProcCmdline(cmdline))
			}
			s, err := sysroot.Open(path, opts...)
			if err != nil {
				return fmt.Errorf("cannot open sysroot: %w", err)
			}
			defer s.Close()
			res, err := boot.BootComplete(cmd.Context(), s, boot.BootCompleteOptions{ESP: esp, Root: root, CheckTimeout: timeout})
			w := cmd.OutOrStdout()
			if asJSON {
				if jerr := writeJSON(w, res); jerr != nil {
					return jerr
				}
			} else if res != nil {
				for _, c := range res.Checks {
					state := "ok"
					if c.Err != "" {
						state = "FAILED: " + c.Err
					}
					fmt.Fprintf(w, "check %s: %s\n", c.Name, state)
					if c.Err != "" && c.Output != "" { // what the check said (its last 4 KiB)
						for _, l := range strings.Split(c.Output, "\n") {
							fmt.Fprintf(w, "  %s\n", l)
						}
					}
				}
			}
			if err != nil {
				if reboot && res != nil && res.OnTrial {
					fmt.Fprintf(cmd.ErrOrStderr(), "strata: boot of %s failed its health checks while on trial: rebooting\n", res.Booted)
					if rerr := rebootNow(cmd.Context()); rerr != nil {
						err = errors.Join(err, rerr)
					}
				}
				return fmt.Errorf("cannot complete the boot: %w", err)
			}
			if !asJSON {
				switch {
				case res.RolledBack:
					fmt.Fprintf(w, "Firmware fell back from %s (no tries left); %s is the default again.\n", res.BadDefault, res.Booted)
				case res.Blessed:
					fmt.Fprintf(w, "Boot of %s is good; entry %s blessed.\n", res.Booted, res.Entry)
				default:
					fmt.Fprintf(w, "Boot of %s is good.\n", res.Booted)
				}
			}
			return nil
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().StringVar(&esp, "esp", boot.DefaultESP, "the mounted EFI system partition")
	cmd.Flags().StringVar(&root, "root", "/", "root of the health-check directories")
	cmd.Flags().DurationVar(&timeout, "timeout", bootloader.DefaultCheckTimeout, "time limit of each health check")
	cmd.Flags().StringVar(&cmdline, "proc-cmdline", "", "read the booted kernel's command line from this file (tests)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks and actions as JSON")
	cmd.Flags().BoolVar(&reboot, "reboot-on-failure", false, "reboot at once when a check fails and the boot is on trial")
	return cmd
}

// rebootNow queues a reboot through systemd's own socket: the start job of
// reboot.target that `systemctl reboot` makes, without logind and D-Bus
// (a node may have neither), and without waiting for it.
func rebootNow(ctx context.Context) error {
	out, err := exec.CommandContext(ctx, "systemctl", "start", "--no-block", "--job-mode=replace-irreversibly", "reboot.target").CombinedOutput()
	if err != nil {
		return fmt.Errorf("rebooting: systemctl start reboot.target: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}
