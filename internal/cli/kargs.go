package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

func newKargsCmd() *cobra.Command {
	var (
		path string
		idx  int
		edit sysroot.KargsEdit
		asJS bool
	)
	cmd := &cobra.Command{
		Use:   "kargs [--sysroot S] [--deploy-index N] [--append K=V]... [--delete K[=V]]... [--replace K=V|K=OLD=NEW]...",
		Short: "Show or change the kernel arguments of a deployment",
		Long: `Without changes, print the kernel arguments of the deployment (the default one
unless --deploy-index). With --append, --delete or --replace, write them into a
new boot version in one atomic switch (deletes first, then replaces, then
appends, as rpm-ostree kargs). ostree= is managed by strata and cannot be
changed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
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
				if err := s.Reload(); err != nil {
					return fmt.Errorf("cannot reload sysroot: %w", err)
				}
				d = findDeployment(s, d)
			}
			if asJS {
				return writeJSON(cmd.OutOrStdout(), struct {
					Index int      `json:"index"`
					Kargs []string `json:"kargs"`
				}{d.Index, nonNil(d.Kargs)})
			}
			fmt.Fprintln(cmd.OutOrStdout(), strings.Join(d.Kargs, " "))
			return nil
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().IntVar(&idx, "deploy-index", 0, "the deployment to show or change (see strata status)")
	cmd.Flags().StringArrayVar(&edit.Append, "append", nil, "add KEY[=VALUE] (repeatable)")
	cmd.Flags().StringArrayVar(&edit.Delete, "delete", nil, "remove KEY or KEY=VALUE (repeatable)")
	cmd.Flags().StringArrayVar(&edit.Replace, "replace", nil, "set KEY=VALUE, or change KEY=OLD=NEW (repeatable)")
	cmd.Flags().BoolVar(&asJS, "json", false, "print the kernel arguments as JSON")
	return cmd
}
