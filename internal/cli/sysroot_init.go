package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

func newSysrootInitCmd() *cobra.Command {
	var path, osname string
	cmd := &cobra.Command{
		Use:   "init --sysroot S --os NAME",
		Short: "Create a sysroot and a stateroot in it",
		Long: `Create the layout of 'ostree admin init-fs' in S (boot, dev, home, proc, run,
sys, root, tmp, ostree/deploy, and the repository ostree/repo in mode bare) and
the stateroot NAME with its shared /var, as 'ostree admin os-init' does. Running
it again on the same sysroot, or for another stateroot, is fine.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if path == "" || osname == "" {
				return usagef("sysroot init needs --sysroot and --os")
			}
			if err := sysroot.Init(path, osname); err != nil {
				return fmt.Errorf("cannot initialize sysroot: %w", err)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&path, "sysroot", "", "directory to make a sysroot of")
	cmd.Flags().StringVar(&osname, "os", "", "name of the stateroot to create")
	return cmd
}
