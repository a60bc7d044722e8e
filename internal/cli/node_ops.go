package cli

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
)

func newRollbackCmd() *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "rollback [--sysroot S]",
		Short: "Make the rollback deployment the default for the next boot",
		Long: `If the default deployment is the booted one, the one after it becomes the
default; otherwise the booted deployment becomes the default again (as
rpm-ostree rollback). Without a booted deployment (a sysroot that is not /),
deployments 0 and 1 trade places. One atomic switch; the running system is
not changed.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			d, err := s.Rollback(cmd.Context())
			if err != nil {
				return fmt.Errorf("cannot roll back: %w", err)
			}
			return f.printDeployment(cmd, s, d, "Default is now %s; it boots next.")
		}),
	}
	f.register(cmd, "print the new default deployment as JSON")
	return cmd
}

func newCleanupCmd() *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "cleanup [--sysroot S]",
		Short: "Remove deployments, boot files and objects no longer needed",
		Long: `Keep the booted, pending, rollback and pinned deployments and undeploy the
others (one atomic switch), then delete what no boot entry references: the
other boot version, deployment directories, kernel directories under
/boot/ostree, and repository objects no ref reaches.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			st, err := s.Cleanup(cmd.Context())
			if err != nil {
				return fmt.Errorf("cannot clean up: %w", err)
			}
			in := func(rel []string) []string { return underRoot(s.Path(), rel) }
			out := cleanupJSON{Undeployed: in(st.Undeployed), Deployments: in(st.Deployments),
				BootDirs: in(st.BootDirs), ObjectsPruned: len(st.Prune.Deleted), BytesFreed: st.Prune.Bytes}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			for _, d := range out.Undeployed {
				fmt.Fprintf(w, "Undeployed %s\n", d)
			}
			fmt.Fprintf(w, "Deleted %d deployment directories, %d boot directories; pruned %d objects (%s).\n",
				len(out.Deployments), len(out.BootDirs), out.ObjectsPruned, humanBytes(out.BytesFreed))
			return nil
		}),
	}
	f.register(cmd, "print what was removed as JSON")
	return cmd
}

// underRoot returns the paths rel, relative to the sysroot at root, as
// absolute paths (never nil).
func underRoot(root string, rel []string) []string {
	out := make([]string, len(rel))
	for i, p := range rel {
		out[i] = filepath.Join(absPath(root), p)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// parseIndex reads a deployment index argument.
func parseIndex(arg string) (int, error) {
	i, err := strconv.Atoi(arg)
	if err != nil || i < 0 {
		return 0, usagef("deployment index %q: want a number from strata status (0 is the default)", arg)
	}
	return i, nil
}

func newPinCmd() *cobra.Command {
	var (
		f     nodeFlags
		unpin bool
	)
	cmd := &cobra.Command{
		Use:   "pin INDEX [--unpin] [--sysroot S]",
		Short: "Keep a deployment through upgrades and cleanups",
		Long: `Mark the deployment at INDEX (see strata status) as pinned: deploy and cleanup
keep it. --unpin removes the mark. The boot configuration does not change.`,
		Args:              argNames("INDEX"),
		ValidArgsFunction: completeDeploymentIndex,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			idx, err := parseIndex(args[0])
			if err != nil {
				return err
			}
			d, err := s.SetPinned(cmd.Context(), idx, !unpin)
			if err != nil {
				return fmt.Errorf("cannot pin deployment %d: %w", idx, err)
			}
			verb := "Pinned %s"
			if unpin {
				verb = "Unpinned %s"
			}
			return f.printDeployment(cmd, s, d, verb)
		}),
	}
	f.register(cmd, "print the deployment as JSON")
	cmd.Flags().BoolVar(&unpin, "unpin", false, "remove the pin")
	return cmd
}

func newUndeployCmd() *cobra.Command {
	var f nodeFlags
	var force bool
	cmd := &cobra.Command{
		Use:   "undeploy INDEX [--sysroot S]",
		Short: "Remove the deployment at INDEX",
		Long: `Remove the deployment at INDEX (see strata status) from the boot configuration
in one atomic switch, then delete it. The booted deployment cannot be removed;
a pinned deployment, and the last one (the sysroot would have nothing to
boot), only with --force.`,
		Args:              argNames("INDEX"),
		ValidArgsFunction: completeDeploymentIndex,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			idx, err := parseIndex(args[0])
			if err != nil {
				return err
			}
			d, err := s.Undeploy(cmd.Context(), idx, sysroot.UndeployOptions{Force: force})
			if err != nil {
				if ds := s.Deployments(); errors.Is(err, errdefs.ErrFailedPrecondition) && idx < len(ds) && !ds[idx].Booted {
					return fmt.Errorf("cannot undeploy %d: %w (--force removes it anyway)", idx, err)
				}
				return fmt.Errorf("cannot undeploy %d: %w", idx, err)
			}
			return f.printDeployment(cmd, s, d, "Undeployed %s")
		}),
	}
	f.register(cmd, "print the removed deployment as JSON")
	cmd.Flags().BoolVar(&force, "force", false, "also remove a pinned deployment, or the last one")
	return cmd
}

func newFinalizeCmd() *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "finalize [--sysroot S]",
		Short: "Write the staged deployment into the boot configuration (run at shutdown)",
		Long: `If a deployment was staged (strata deploy --stage, strata upgrade), merge its
/etc from the current one (so changes made until shutdown are kept) and make it
the default in one atomic switch. Without a staged deployment it does nothing.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			d, ok, err := s.Finalize(cmd.Context())
			if errors.Is(err, sysroot.ErrStagedLocked) {
				// Not a failure at shutdown: the update agent reboots into it when allowed.
				fmt.Fprintf(cmd.OutOrStdout(), "The staged deployment %s is locked by the update agent; the current default boots next.\n", d.Name())
				return nil
			}
			if err != nil {
				return fmt.Errorf("cannot finalize: %w", err)
			}
			if !ok {
				if f.json {
					return writeJSON(cmd.OutOrStdout(), struct{}{})
				}
				fmt.Fprintln(cmd.OutOrStdout(), "No staged deployment.")
				return nil
			}
			return f.printDeployment(cmd, s, d, "Finalized %s; it boots next.")
		}),
	}
	f.register(cmd, "print the finalized deployment as JSON")
	return cmd
}
