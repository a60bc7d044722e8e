package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/repo"
)

func newRepoInitCmd() *cobra.Command {
	var path, mode string
	cmd := &cobra.Command{
		Use:   "init --repo R [--mode archive|bare|bare-user|bare-user-only]",
		Short: "Create a repository",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := repo.ParseMode(mode)
			if err != nil {
				return usageError{err}
			}
			if path, err = repoPath(path); err != nil {
				return err
			}
			r, err := repo.Init(path, m)
			if err != nil {
				return fmt.Errorf("cannot create repository: %w", err)
			}
			return r.Close()
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&mode, "mode", string(repo.ModeBare), "storage mode: archive, bare, bare-user or bare-user-only")
	return cmd
}
