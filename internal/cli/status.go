package cli

import (
	"fmt"

	"github.com/spf13/cobra"
)

// statusJSON is the --json output of status.
type statusJSON struct {
	Sysroot        string           `json:"sysroot"`
	BootVersion    int              `json:"bootversion"`
	SubBootVersion int              `json:"subbootversion"`
	Deployments    []deploymentJSON `json:"deployments"`
}

func newStatusCmd() *cobra.Command {
	var (
		path string
		asJS bool
	)
	cmd := &cobra.Command{
		Use:   "status [--sysroot S] [--json]",
		Short: "Show the deployments of a sysroot",
		Long: `List the deployments of the sysroot in boot order: index 0 is the default for
the next boot. Marks the booted deployment (found from ostree= in /proc/cmdline
when the sysroot is /), the staged one (written into the boot configuration at
shutdown), the pending one (the default when it is not the booted one), the
rollback one and the pinned ones.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
			bv, sbv := s.BootVersion()
			out := statusJSON{Sysroot: path, BootVersion: bv, SubBootVersion: sbv, Deployments: []deploymentJSON{}}
			for _, d := range s.Deployments() {
				out.Deployments = append(out.Deployments, toDeploymentJSON(s, d))
			}
			if asJS {
				return writeJSON(cmd.OutOrStdout(), out)
			}
			w := cmd.OutOrStdout()
			if len(out.Deployments) == 0 {
				fmt.Fprintln(w, "No deployments.")
				return nil
			}
			fmt.Fprintln(w, "Deployments:")
			for _, dj := range out.Deployments {
				printDeployment(w, dj)
			}
			return nil
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJS, "json", false, "print the deployments as JSON")
	return cmd
}
