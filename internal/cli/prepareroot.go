package cli

import (
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/prepareroot"
)

// prepareRootJSON is the --json output of prepare-root --dry-run.
type prepareRootJSON struct {
	Root       string   `json:"root"`
	RootFSType string   `json:"rootfstype"`
	Stateroot  string   `json:"stateroot,omitempty"`
	Deployment string   `json:"deployment,omitempty"`
	Init       string   `json:"init"`
	Steps      []string `json:"steps"`
}

func newPrepareRootCmd() *cobra.Command {
	var (
		dryRun, asJS     bool
		sysroot, cmdline string
	)
	cmd := &cobra.Command{
		Use:   "prepare-root [--dry-run [--sysroot DIR] [--cmdline ARGS]]",
		Short: "Mount the OSTree deployment named by ostree= and switch into it (initramfs /init)",
		Long: `prepare-root is the /init of strata's initramfs (see strata initramfs): it mounts
root= on /sysroot, binds the deployment named by ostree= with a read-only /usr,
the stateroot's /var and the physical root at /sysroot, creates
/run/ostree-booted, and executes init= (default /sbin/init) in it. The strata
binary runs it by itself when started as /init, or as PID 1 without arguments.
Only this initramfs mode exists; running it as init= from the real root is not
supported.

--dry-run prints what it would do for the physical root mounted at --sysroot
(default /sysroot) and the kernel command line --cmdline (default
/proc/cmdline), without changing anything.

Kernel command line: root=/dev/...|LABEL=|UUID=|PARTLABEL=|PARTUUID=,
rootfstype= (ext4), rootflags=, ro|rw (rw), ostree=, init=, rd.timeout=
(seconds to wait for the root device, 10), rd.break (print the steps and
mounts instead of switching, then act as on failure), initrd.onfail=
poweroff|reboot (poweroff; a failure prints "strata prepare-root: FATAL: ..."
on the console and waits 2 s first). LABEL= and UUID= are read from ext2/3/4
superblocks, PARTLABEL= and PARTUUID= from GPT partition tables.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !dryRun {
				return prepareroot.Init(firstBootProvisioner{}) // returns only when not PID 1
			}
			if cmdline == "" {
				b, err := os.ReadFile("/proc/cmdline")
				if err != nil {
					return fmt.Errorf("cannot read the kernel command line: %w", err)
				}
				cmdline = string(b)
			}
			cfg, err := prepareroot.ParseCmdline(cmdline)
			if err != nil {
				return usagef("cannot prepare root: %w", err)
			}
			l := prepareroot.DefaultLayout
			l.Sysroot = sysroot
			d, steps, err := prepareroot.Plan(l, cfg)
			if err != nil {
				return fmt.Errorf("cannot prepare root: %w", err)
			}
			js := prepareRootJSON{Root: cfg.Root, RootFSType: cfg.RootFSType, Stateroot: d.Stateroot,
				Deployment: d.Name, Init: cfg.Init, Steps: []string{}}
			for _, s := range steps {
				js.Steps = append(js.Steps, s.String())
			}
			if asJS {
				return writeJSON(cmd.OutOrStdout(), js)
			}
			w := cmd.OutOrStdout()
			if d.Name != "" {
				fmt.Fprintf(w, "deployment %s (stateroot %s)\n", d.Name, d.Stateroot)
			}
			fmt.Fprintf(w, "%s\nexec %s\n", strings.Join(js.Steps, "\n"), cfg.Init)
			return nil
		},
	}
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the plan instead of running as /init")
	cmd.Flags().StringVar(&sysroot, "sysroot", prepareroot.DefaultLayout.Sysroot, "where the physical root is mounted (with --dry-run)")
	cmd.Flags().StringVar(&cmdline, "cmdline", "", "kernel command line to use (with --dry-run; default /proc/cmdline)")
	cmd.Flags().BoolVar(&asJS, "json", false, "print the plan as JSON (with --dry-run)")
	return cmd
}

// runInit is Main when the binary is the initramfs /init; as PID 1 it never
// returns.
func runInit(stderr io.Writer) int {
	fmt.Fprintf(stderr, "strata: %v\n", prepareroot.Init(firstBootProvisioner{}))
	return exitFailure
}
