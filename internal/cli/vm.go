package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/vm"
)

func newVMCmd() *cobra.Command {
	var (
		cfg                                vm.Config
		serial, vars, accel                string
		uefi, snapshot, asJS               bool
		timeout                            time.Duration
		markers, forwards                  []string
		kernel, initrd, appendArgs, vmArgs string
	)
	cmd := &cobra.Command{
		Use:   "vm [DISK.img] [--uefi | --kernel K [--initrd I] [--append A]] [--marker REGEX]...",
		Short: "Boot a disk image or kernel in QEMU and watch it (for demos and tests)",
		Long: `Boot DISK.img under UEFI (OVMF and a writable variable store; the default) or a
kernel directly, with the console on ttyS0 and a marker port on ttyS1 (guest lines
"STRATA-MARK <name> [value]"). The console goes to stdout on a terminal, or to the
--serial file. With --marker, the run succeeds when a marker-port line matches and QEMU
then exits (the guest powers off); without, when the guest powers off. A console line
matching "Kernel panic" or "FATAL", a timeout, or an unclean exit is a failure (exit 1).
A summary with the time of each boot milestone follows.

QEMU uses TCG unless --accel kvm or STRATA_VM_ACCEL=kvm: a /dev/kvm that only a real
kernel boot proves to work is not trusted by default.`,
		Args: argNames("[DISK.img]"),
		RunE: func(cmd *cobra.Command, args []string) error {
			if kernel != "" && cmd.Flags().Changed("uefi") && uefi {
				return usagef("--uefi and --kernel exclude each other")
			}
			if kernel == "" && (initrd != "" || appendArgs != "") {
				return usagef("--initrd and --append need --kernel")
			}
			if kernel == "" && len(args) == 0 {
				return usagef("need DISK.img (UEFI boot) or --kernel")
			}
			if kernel != "" {
				cfg.Kernel, cfg.Initrd, cfg.Append = kernel, initrd, appendArgs
			} else {
				cfg.UEFI = &vm.UEFI{Vars: vars}
			}
			if len(args) == 1 {
				cfg.Disks = []vm.Disk{{Path: args[0], Snapshot: snapshot}}
			}
			cfg.Accel, cfg.Until, cfg.Timeout, cfg.ConsoleLog = vm.Accel(accel), markers, timeout, serial
			for _, f := range forwards {
				h, g, ok := strings.Cut(f, ":")
				hp, herr := strconv.Atoi(h)
				gp, gerr := strconv.Atoi(g)
				if !ok || herr != nil || gerr != nil {
					return usagef("--forward %q: want HOSTPORT:GUESTPORT", f)
				}
				cfg.Forwards = append(cfg.Forwards, vm.Forward{HostPort: hp, GuestPort: gp})
			}
			if vmArgs != "" {
				cfg.ExtraArgs = append(cfg.ExtraArgs, strings.Fields(vmArgs)...)
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if serial == "" && !asJS && isTerminal(cmd.OutOrStdout()) {
				cfg.ConsoleOut = cmd.OutOrStdout()
			}
			m, err := vm.Start(ctx, cfg)
			if errors.Is(err, errdefs.ErrInvalid) {
				return usageError{err}
			}
			if err != nil {
				return fmt.Errorf("cannot start the machine: %w", err)
			}
			r := m.Wait()
			ok := r.OK(len(markers) > 0)
			if asJS {
				if err := writeJSON(cmd.OutOrStdout(), toVMJSON(r, ok)); err != nil {
					return err
				}
			} else {
				printVMSummary(cmd.OutOrStdout(), r)
			}
			if !ok {
				return fmt.Errorf("cannot boot: %s%s", describeVMFailure(r, len(markers) > 0), consoleNote(r, serial))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&uefi, "uefi", true, "boot DISK.img through OVMF and the ESP's boot loader (the default)")
	f.StringVar(&vars, "vars", "", "UEFI variable store to use and keep (created from OVMF_VARS_4M.fd when missing); default: a fresh one")
	f.StringVar(&kernel, "kernel", "", "boot this kernel directly (bzImage, or an uncompressed vmlinux through PVH)")
	f.StringVar(&initrd, "initrd", "", "initramfs for --kernel")
	f.StringVar(&appendArgs, "append", "", "kernel command line for --kernel (add console=ttyS0 to see it)")
	f.StringVar(&serial, "serial", "", "write the console (ttyS0) to this file instead of the terminal")
	f.StringVar(&cfg.MarkerLog, "markers", "", "write the marker port (ttyS1) to this file")
	f.StringArrayVar(&markers, "marker", nil, "success pattern (regular expression) over marker-port lines; repeatable")
	f.DurationVar(&timeout, "timeout", 10*time.Minute, "kill the machine and fail after this long")
	f.BoolVar(&snapshot, "snapshot", false, "discard the guest's writes to DISK.img")
	f.BoolVar(&cfg.Net, "net", false, "user networking: the guest reaches the host at 10.0.2.2")
	f.StringArrayVar(&forwards, "forward", nil, "with --net: forward the host's 127.0.0.1:HOSTPORT to the guest's GUESTPORT (HOSTPORT:GUESTPORT, e.g. 2222:22); repeatable")
	f.BoolVar(&cfg.AllowReboot, "reboot", false, "let the guest reboot inside one run (boot counting); by default a reboot ends the run")
	f.IntVar(&cfg.MemoryMiB, "memory", vm.DefaultMemoryMiB, "guest memory in MiB")
	f.IntVar(&cfg.SMP, "smp", 0, "vCPUs (default min(2, host cores); never more than host cores under TCG)")
	f.StringVar(&accel, "accel", "", "accelerator: tcg or kvm (default tcg, or $STRATA_VM_ACCEL)")
	f.StringVar(&vmArgs, "qemu-args", "", "extra QEMU arguments, separated by spaces")
	f.BoolVar(&asJS, "json", false, "print the result as JSON")
	return cmd
}

func toVMJSON(r vm.Result, ok bool) vmJSON {
	j := vmJSON{Reason: string(r.Reason), OK: ok, Matched: r.Matched, Failure: r.Failure, Exited: r.Exited,
		ExitCode: r.ExitCode, Seconds: r.Elapsed.Seconds(), Milestones: []vmMilestoneJSON{}, Markers: []vmMarkerJSON{}}
	for _, m := range r.Milestones {
		j.Milestones = append(j.Milestones, vmMilestoneJSON{Pattern: m.Pattern, Seconds: m.At.Seconds()})
	}
	for _, m := range r.Markers {
		j.Markers = append(j.Markers, vmMarkerJSON{Name: m.Name, Value: m.Value, Seconds: m.At.Seconds()})
	}
	return j
}

func printVMSummary(w io.Writer, r vm.Result) {
	fmt.Fprintf(w, "\n== %s after %.1fs", r.Reason, r.Elapsed.Seconds())
	if r.Exited {
		fmt.Fprintf(w, " (QEMU exit status %d)", r.ExitCode)
	} else {
		fmt.Fprint(w, " (QEMU killed)")
	}
	fmt.Fprintln(w)
	for _, m := range r.Milestones {
		fmt.Fprintf(w, "%7.1fs  %s\n", m.At.Seconds(), m.Pattern)
	}
	for _, m := range r.Markers {
		fmt.Fprintf(w, "%7.1fs  marker %s %s\n", m.At.Seconds(), m.Name, m.Value)
	}
}

func describeVMFailure(r vm.Result, wantMarker bool) string {
	switch {
	case r.Failure != "" && r.Reason != vm.ReasonMarker:
		return fmt.Sprintf("the console showed %q", r.Failure)
	case r.Reason == vm.ReasonTimeout:
		return fmt.Sprintf("timed out after %.0fs", r.Elapsed.Seconds())
	case r.Reason == vm.ReasonKilled:
		return "interrupted"
	case r.Reason == vm.ReasonMarker && !r.Exited:
		return "the marker showed up but the guest did not power off"
	case r.Exited && r.ExitCode != 0:
		return fmt.Sprintf("QEMU exited with status %d", r.ExitCode)
	case wantMarker && r.Reason == vm.ReasonExited:
		return "the guest powered off without the marker"
	}
	return string(r.Reason)
}

// consoleNote adds the console's last lines to an error, unless the user already saw or kept
// the console.
func consoleNote(r vm.Result, serial string) string {
	if serial != "" {
		return " (console in " + serial + ")"
	}
	if r.ConsoleTail == "" {
		return ""
	}
	return "; the console ends with:\n" + r.ConsoleTail
}
