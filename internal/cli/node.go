package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

// The node verbs (status, deploy, upgrade, rollback, cleanup, pin,
// undeploy, kargs, finalize) act on a sysroot: "/" on a booted system,
// any directory in tests and image builds. They share one prologue,
// nodeFlags: the --sysroot and --json flags, opening the sysroot with the
// running node's ESP, and closing it. (bootloader sync and boot-complete
// check the ESP they are given first, and open the sysroot themselves.) Each sysroot
// operation takes the sysroot lock itself and leaves the reloaded state
// behind, so a verb is: flags, one call, print.

// nodeFlags are the flags every node verb takes.
type nodeFlags struct {
	sysroot string
	json    bool
	// procCmdline, if set, is read as the running kernel's command line
	// (a hidden flag of the verbs that act for the booted deployment;
	// tests).
	procCmdline string
}

// register adds --sysroot and --json (described by jsonHelp) to cmd.
func (f *nodeFlags) register(cmd *cobra.Command, jsonHelp string) {
	addSysrootFlag(cmd, &f.sysroot)
	cmd.Flags().BoolVar(&f.json, "json", false, jsonHelp)
}

// run returns cmd's RunE: open the sysroot, run fn on it, close it.
func (f *nodeFlags) run(fn func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		var opts []sysroot.Option
		if f.procCmdline != "" {
			opts = append(opts, sysroot.WithProcCmdline(f.procCmdline))
		}
		s, err := openSysroot(f.sysroot, opts...)
		if err != nil {
			return err
		}
		defer s.Close()
		return fn(cmd, s, args)
	}
}

// printDeployment prints d, the deployment an operation acted on (as the
// operation returned it: index and flags as they are now), or its JSON.
// format has one %s, the deployment's name.
func (f *nodeFlags) printDeployment(cmd *cobra.Command, s *sysroot.Sysroot, d sysroot.Deployment, format string) error {
	if f.json {
		return writeJSON(cmd.OutOrStdout(), toDeploymentJSON(s, d))
	}
	fmt.Fprintf(cmd.OutOrStdout(), format+"\n", fmt.Sprintf("%s.%d (%s)", d.Checksum, d.Serial, d.OSName))
	return nil
}

func addSysrootFlag(cmd *cobra.Command, path *string) {
	cmd.Flags().StringVar(path, "sysroot", hostEnv().defaultSysroot(), "the sysroot to act on ($OSTREE_SYSROOT sets the default)")
}

func openSysroot(path string, extra ...sysroot.Option) (*sysroot.Sysroot, error) {
	s, err := sysroot.Open(path, append(nodeESP(path), extra...)...)
	if err != nil {
		return nil, fmt.Errorf("cannot open sysroot: %w", err)
	}
	return s, nil
}

func toDeploymentJSON(s *sysroot.Sysroot, d sysroot.Deployment) deploymentJSON {
	out := deploymentJSON{
		Index: d.Index, OSName: d.OSName, Checksum: d.Checksum.String(), Serial: d.Serial,
		BootChecksum: d.BootChecksum, BootSerial: d.BootSerial, Refspec: d.Refspec, ImageDigest: d.ImageDigest, Version: d.Version,
		Kargs: d.Kargs, Booted: d.Booted, Staged: d.Staged, Pinned: d.Pinned, Path: filepath.Join(absPath(s.Path()), d.Path()),
	}
	if out.Kargs == nil {
		out.Kargs = []string{}
	}
	if !d.Timestamp.IsZero() {
		out.Timestamp = d.Timestamp.Unix()
	}
	if p, ok := s.Pending(); ok && p.Index == d.Index && !d.Staged {
		out.Pending = true
	}
	if r, ok := s.RollbackDeployment(); ok && r.Index == d.Index {
		out.Rollback = true
	}
	if l := sysroot.LayeringOf(d.Origin); !l.Empty() {
		if b, err := s.BaseCommit(d); err == nil {
			out.BaseChecksum = b.String()
		}
		out.RequestedPackages, out.RequestedLocal, out.RequestedBaseRemovals = l.Requested, l.RequestedLocal, l.Removed
	}
	return out
}

// printStatusEntry writes one deployment in the style of rpm-ostree status.
func printStatusEntry(w io.Writer, dj deploymentJSON) {
	mark := " "
	if dj.Booted {
		mark = "●"
	}
	origin := dj.Refspec
	if origin == "" {
		origin = dj.Checksum
	}
	var tags []string
	for _, t := range []struct {
		on   bool
		name string
	}{{dj.Booted, "booted"}, {dj.Staged, "staged"}, {dj.Pending, "pending"}, {dj.Rollback, "rollback"}, {dj.Pinned, "pinned"}} {
		if t.on {
			tags = append(tags, t.name)
		}
	}
	head := fmt.Sprintf("%s %s:%s", mark, dj.OSName, origin)
	if len(tags) > 0 {
		head += " (" + strings.Join(tags, ", ") + ")"
	}
	fmt.Fprintln(w, head)
	if dj.Version != "" {
		v := dj.Version
		if dj.Timestamp != 0 {
			v += " (" + time.Unix(dj.Timestamp, 0).UTC().Format(time.RFC3339) + ")"
		}
		fmt.Fprintf(w, "    %-10s %s\n", "Version:", v)
	} else if dj.Timestamp != 0 {
		fmt.Fprintf(w, "    %-10s %s\n", "Timestamp:", time.Unix(dj.Timestamp, 0).UTC().Format(time.RFC3339))
	}
	if dj.ImageDigest != "" {
		fmt.Fprintf(w, "    %-10s %s\n", "Digest:", dj.ImageDigest)
	}
	fmt.Fprintf(w, "    %-10s %s.%d\n", "Commit:", dj.Checksum, dj.Serial)
	fmt.Fprintf(w, "    %-10s %d\n", "Index:", dj.Index)
	if len(dj.Kargs) > 0 {
		fmt.Fprintf(w, "    %-10s %s\n", "Kargs:", strings.Join(dj.Kargs, " "))
	}
	if dj.BaseChecksum != "" {
		fmt.Fprintf(w, "    %-10s %s\n", "BaseCommit:", dj.BaseChecksum)
	}
	if len(dj.RequestedPackages)+len(dj.RequestedLocal) > 0 {
		fmt.Fprintf(w, "    %-10s %s\n", "LayeredPackages:", strings.Join(slices.Concat(dj.RequestedPackages, dj.RequestedLocal), " "))
	}
	if len(dj.RequestedBaseRemovals) > 0 {
		fmt.Fprintf(w, "    %-10s %s\n", "RemovedBasePackages:", strings.Join(dj.RequestedBaseRemovals, " "))
	}
	if dj.LiveApplied != "" {
		fmt.Fprintf(w, "    %-10s %s (its additions to /usr, until the reboot)\n", "LiveApplied:", dj.LiveApplied)
	}
}
