package cli

import (
	"fmt"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/provision"
	"github.com/strata-os/strata/internal/sysroot"
)

func newKargsCmd() *cobra.Command {
	var (
		f                   nodeFlags
		idx                 int
		edit                sysroot.KargsEdit
		provisioned, reboot bool
	)
	cmd := &cobra.Command{
		Use:   "kargs [--sysroot S] [--deploy-index N] [--append K=V]... [--delete K[=V]]... [--replace K=V|K=OLD=NEW]...",
		Short: "Show or change the kernel arguments of a deployment",
		Long: `Without changes, print the kernel arguments of the deployment (the default one
unless --deploy-index). With --append, --delete or --replace, write them into a
new boot version in one atomic switch (deletes first, then replaces, then
appends, as rpm-ostree kargs). ostree= is managed by strata and cannot be
changed.

With --provisioned, set the kernelArguments a first-boot provisioning config
asked for (shouldExist appended when missing, shouldNotExist deleted when
present) on the default deployment, once; with --reboot, reboot if that changed
them (strata-provision-kargs.service runs it on the first boot).`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			if provisioned {
				if len(edit.Append)+len(edit.Delete)+len(edit.Replace) > 0 || idx != 0 {
					return usagef("--provisioned takes no --append, --delete, --replace or --deploy-index")
				}
				return provisionedKargs(cmd, s, reboot)
			}
			if reboot {
				return usagef("--reboot goes with --provisioned")
			}
			ds := s.Deployments()
			if idx < 0 || idx >= len(ds) {
				return usagef("cannot use deployment index %d: the sysroot has %d deployments", idx, len(ds))
			}
			d := ds[idx]
			if len(edit.Append)+len(edit.Delete)+len(edit.Replace) > 0 {
				var err error
				if d, err = s.EditKargsAt(cmd.Context(), idx, edit); err != nil {
					return fmt.Errorf("cannot change kernel arguments: %w", err)
				}
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), kargsJSON{Index: d.Index, Kargs: nonNil(d.Kargs)})
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(d.Kargs, " "))
			return nil
		}),
	}
	f.register(cmd, "print the kernel arguments as JSON")
	cmd.Flags().IntVar(&idx, "deploy-index", 0, "the deployment to show or change (see strata status)")
	cmd.RegisterFlagCompletionFunc("deploy-index", completeDeploymentIndex)
	cmd.Flags().StringArrayVar(&edit.Append, "append", nil, "add KEY[=VALUE] (repeatable)")
	cmd.Flags().StringArrayVar(&edit.Delete, "delete", nil, "remove KEY or KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVar(&edit.Replace, "replace", nil, "set KEY=VALUE, or change KEY=OLD=NEW (repeatable)")
	cmd.Flags().BoolVar(&provisioned, "provisioned", false, "set the kernel arguments the first-boot provisioning config asked for")
	cmd.Flags().BoolVar(&reboot, "reboot", false, "with --provisioned: reboot when the kernel arguments changed")
	return cmd
}

// provisionedKargs sets the first-boot config's pending kernel arguments on the default
// deployment, then clears them; a re-run after a crash finds them set and changes nothing.
func provisionedKargs(cmd *cobra.Command, s *sysroot.Sysroot, reboot bool) error {
	phys := physicalRoot(s.Path())
	ka, found, err := provision.PendingKargs(phys)
	if err != nil {
		return fmt.Errorf("cannot read the provisioned kernel arguments: %w", err)
	}
	w := cmd.OutOrStdout()
	if !found {
		fmt.Fprintln(w, "no kernel arguments from provisioning to set")
		return nil
	}
	ds := s.Deployments()
	if len(ds) == 0 {
		return fmt.Errorf("cannot set the provisioned kernel arguments: the sysroot has no deployment: %w", errdefs.ErrFailedPrecondition)
	}
	add, del := provision.KargsEdit(ds[0].Kargs, ka)
	if len(add)+len(del) > 0 {
		if _, err := s.EditKargsAt(cmd.Context(), 0, sysroot.KargsEdit{Append: add, Delete: del}); err != nil {
			return fmt.Errorf("cannot set the provisioned kernel arguments: %w", err)
		}
	}
	if err := provision.ClearPendingKargs(phys); err != nil {
		return fmt.Errorf("cannot clear the provisioned kernel arguments: %w", err)
	}
	if len(add)+len(del) == 0 {
		fmt.Fprintln(w, "the provisioned kernel arguments are already set")
		return nil
	}
	fmt.Fprintf(w, "kernel arguments of the first-boot config: added %q, deleted %q\n", add, del)
	if reboot {
		fmt.Fprintln(w, "rebooting once into them")
		if out, err := exec.CommandContext(cmd.Context(), "systemctl", "reboot").CombinedOutput(); err != nil {
			return fmt.Errorf("cannot reboot: %w: %s", err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}
