package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/image"
	"github.com/strata-os/strata/internal/sysroot"
)

func init() { register("", newBootCompleteCmd) }

func newBootCompleteCmd() *cobra.Command {
	var (
		path, esp, root, cmdline string
		timeout                  time.Duration
		asJSON                   bool
	)
	cmd := &cobra.Command{
		Use:   "boot-complete [--sysroot /] [--esp /boot/efi]",
		Short: "Run the health checks and mark the booted deployment good",
		Long: `Run the health checks (the executables in /etc/strata/health.d and
/usr/lib/strata/health.d, by name, each with --timeout). If one fails, exit 1
naming it and change nothing: the boot entry stays counted, and firmware falls
back to the previous deployment once its tries are used up. Otherwise remove
the boot counter of the booted deployment's ESP entry, and if firmware had
fallen back (the default deployment's entry has no tries left), roll back so
that the booted deployment is the default again. strata-boot-complete.service
runs it before boot-complete.target.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := []sysroot.Option{sysroot.WithBootloader(espSync(esp, bootloader.DefaultTries))}
			if cmdline != "" {
				opts = append(opts, sysroot.WithProcCmdline(cmdline))
			}
			s, err := sysroot.Open(path, opts...)
			if err != nil {
				return fmt.Errorf("cannot open sysroot: %w", err)
			}
			defer s.Close()
			res, err := image.BootComplete(cmd.Context(), s, image.BootCompleteOptions{ESP: esp, Root: root, CheckTimeout: timeout})
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
				}
			}
			if err != nil {
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
	cmd.Flags().StringVar(&esp, "esp", image.DefaultESP, "the mounted EFI system partition")
	cmd.Flags().StringVar(&root, "root", "/", "root of the health-check directories")
	cmd.Flags().DurationVar(&timeout, "timeout", bootloader.DefaultCheckTimeout, "time limit of each health check")
	cmd.Flags().StringVar(&cmdline, "proc-cmdline", "", "read the booted kernel's command line from this file (tests)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the checks and actions as JSON")
	return cmd
}
