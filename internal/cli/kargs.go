package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

func newKargsCmd() *cobra.Command {
	var (
		f    nodeFlags
		idx  int
		edit sysroot.KargsEdit
	)
	cmd := &cobra.Command{
		Use:   "kargs [--sysroot S] [--deploy-index N] [--append K=V]... [--delete K[=V]]... [--replace K=V|K=OLD=NEW]...",
		Short: "Show or change the kernel arguments of a deployment",
		Long: `Without changes, print the kernel arguments of the deployment (the default one
unless --deploy-index). With --append, --delete or --replace, write them into a
new boot version in one atomic switch (deletes first, then replaces, then
appends, as rpm-ostree kargs). ostree= is managed by strata and cannot be
changed.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
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
	return cmd
}
