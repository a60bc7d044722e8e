package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

func newStatusCmd() *cobra.Command {
	var f nodeFlags
	cmd := &cobra.Command{
		Use:   "status [--sysroot S] [--json]",
		Short: "Show the deployments of a sysroot",
		Long: `List the deployments of the sysroot in boot order: index 0 is the default for
the next boot. Marks the booted deployment (found from ostree= in /proc/cmdline
when the sysroot is /), the staged one (written into the boot configuration at
shutdown), the pending one (the default when it is not the booted one), the
rollback one and the pinned ones.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			bv, sbv := s.BootVersion()
			out := statusJSON{Sysroot: absPath(s.Path()), BootVersion: bv, SubBootVersion: sbv, Deployments: []deploymentJSON{}}
			for _, d := range s.Deployments() {
				out.Deployments = append(out.Deployments, toDeploymentJSON(s, d))
			}
			if f.json {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			if len(out.Deployments) == 0 {
				fmt.Fprintln(w, "No deployments.")
				return nil
			}
			fmt.Fprintln(w, "Deployments:")
			for _, dj := range out.Deployments {
				printStatusEntry(w, dj)
			}
			return nil
		}),
	}
	f.register(cmd, "print the deployments as JSON")
	return cmd
}
