package cli

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
)

// printChanged prints the deployment an operation acted on, or its JSON.
func printChanged(cmd *cobra.Command, s *sysroot.Sysroot, d sysroot.Deployment, asJS bool, format string) error {
	if err := s.Reload(); err != nil {
		return fmt.Errorf("cannot reload sysroot: %w", err)
	}
	dj := toDeploymentJSON(s, findDeployment(s, d))
	if asJS {
		return writeJSON(cmd.OutOrStdout(), dj)
	}
	fmt.Fprintf(cmd.OutOrStdout(), format+"\n", fmt.Sprintf("%s.%d (%s)", d.Checksum, d.Serial, d.OSName))
	return nil
}

func newRollbackCmd() *cobra.Command {
	var (
		path string
		asJS bool
	)
	cmd := &cobra.Command{
		Use:   "rollback [--sysroot S]",
		Short: "Make the rollback deployment the default for the next boot",
		Long: `If the default deployment is the booted one, the one after it becomes the
default; otherwise the booted deployment becomes the default again (as
rpm-ostree rollback). Without a booted deployment (a sysroot that is not /),
deployments 0 and 1 trade places. One atomic switch; the running system is
not changed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
			d, err := s.Rollback(cmd.Context())
			if err != nil {
				return fmt.Errorf("cannot roll back: %w", err)
			}
			return printChanged(cmd, s, d, asJS, "Default is now %s; it boots next.")
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJS, "json", false, "print the new default deployment as JSON")
	return cmd
}

// cleanupJSON is the --json output of cleanup.
type cleanupJSON struct {
	Undeployed    []string `json:"undeployed"`
	Deployments   []string `json:"deployments_deleted"`
	BootDirs      []string `json:"boot_dirs_deleted"`
	ObjectsPruned int      `json:"objects_pruned"`
	BytesFreed    int64    `json:"bytes_freed"`
}

func newCleanupCmd() *cobra.Command {
	var (
		path string
		asJS bool
	)
	cmd := &cobra.Command{
		Use:   "cleanup [--sysroot S]",
		Short: "Remove deployments, boot files and objects no longer needed",
		Long: `Keep the booted, pending, rollback and pinned deployments and undeploy the
others (one atomic switch), then delete what no boot entry references: the
other boot version, deployment directories, kernel directories under
/boot/ostree, and repository objects no ref reaches.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
			st, err := s.Cleanup(cmd.Context())
			if err != nil {
				return fmt.Errorf("cannot clean up: %w", err)
			}
			out := cleanupJSON{Undeployed: nonNil(st.Undeployed), Deployments: nonNil(st.Deployments),
				BootDirs: nonNil(st.BootDirs), ObjectsPruned: len(st.Prune.Deleted), BytesFreed: st.Prune.Bytes}
			if asJS {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			for _, d := range out.Undeployed {
				fmt.Fprintf(w, "Undeployed %s\n", d)
			}
			fmt.Fprintf(w, "Deleted %d deployment directories, %d boot directories; pruned %d objects (%s).\n",
				len(out.Deployments), len(out.BootDirs), out.ObjectsPruned, humanBytes(out.BytesFreed))
			return nil
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJS, "json", false, "print what was removed as JSON")
	return cmd
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
		path        string
		unpin, asJS bool
	)
	cmd := &cobra.Command{
		Use:   "pin INDEX [--unpin] [--sysroot S]",
		Short: "Keep a deployment through upgrades and cleanups",
		Long: `Mark the deployment at INDEX (see strata status) as pinned: deploy and cleanup
keep it. --unpin removes the mark. The boot configuration does not change.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			idx, err := parseIndex(args[0])
			if err != nil {
				return err
			}
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
			d, err := s.SetPinned(cmd.Context(), idx, !unpin)
			if err != nil {
				return fmt.Errorf("cannot pin deployment %d: %w", idx, err)
			}
			verb := "Pinned %s"
			if unpin {
				verb = "Unpinned %s"
			}
			return printChanged(cmd, s, d, asJS, verb)
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().BoolVar(&unpin, "unpin", false, "remove the pin")
	cmd.Flags().BoolVar(&asJS, "json", false, "print the deployment as JSON")
	return cmd
}

func newUndeployCmd() *cobra.Command {
	var (
		path        string
		asJS, force bool
	)
	cmd := &cobra.Command{
		Use:   "undeploy INDEX [--sysroot S]",
		Short: "Remove the deployment at INDEX",
		Long: `Remove the deployment at INDEX (see strata status) from the boot configuration
in one atomic switch, then delete it. The booted deployment cannot be removed;
a pinned deployment, and the last one (the sysroot would have nothing to
boot), only with --force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			idx, err := parseIndex(args[0])
			if err != nil {
				return err
			}
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
			d, err := s.Undeploy(cmd.Context(), idx, sysroot.UndeployOptions{Force: force})
			if err != nil {
				if ds := s.Deployments(); errors.Is(err, errdefs.ErrFailedPrecondition) && idx < len(ds) && !ds[idx].Booted {
					return fmt.Errorf("cannot undeploy %d: %w (--force removes it anyway)", idx, err)
				}
				return fmt.Errorf("cannot undeploy %d: %w", idx, err)
			}
			if asJS {
				return writeJSON(cmd.OutOrStdout(), toDeploymentJSON(s, d))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Undeployed %s.%d (%s)\n", d.Checksum, d.Serial, d.OSName)
			return nil
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJS, "json", false, "print the removed deployment as JSON")
	cmd.Flags().BoolVar(&force, "force", false, "also remove a pinned deployment, or the last one")
	return cmd
}

func newFinalizeCmd() *cobra.Command {
	var (
		path string
		asJS bool
	)
	cmd := &cobra.Command{
		Use:   "finalize [--sysroot S]",
		Short: "Write the staged deployment into the boot configuration (run at shutdown)",
		Long: `If a deployment was staged (strata deploy --stage, strata upgrade), merge its
/etc from the current one (so changes made until shutdown are kept) and make it
the default in one atomic switch. Without a staged deployment it does nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
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
				if asJS {
					return writeJSON(cmd.OutOrStdout(), struct{}{})
				}
				fmt.Fprintln(cmd.OutOrStdout(), "No staged deployment.")
				return nil
			}
			return printChanged(cmd, s, d, asJS, "Finalized %s; it boots next.")
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJS, "json", false, "print the finalized deployment as JSON")
	return cmd
}
