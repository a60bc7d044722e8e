package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

func newRepoInitCmd() *cobra.Command {
	var path, mode string
	cmd := &cobra.Command{
		Use:   "init --repo R [--mode archive|bare|bare-user|bare-user-only]",
		Short: "Create a repository",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := repo.ParseMode(mode)
			if err != nil {
				return usageError{err}
			}
			if path, err = repoPath(path); err != nil {
				return err
			}
			r, err := repo.Init(path, m)
			if errors.Is(err, errdefs.ErrAlreadyExists) {
				// As ostree init: an existing repository of the same
				// mode is fine.
				if r, err = repo.Open(path); err == nil && r.Mode() != m {
					r.Close()
					return fmt.Errorf("cannot create repository: %s exists with mode %s, not %s", path, r.Mode(), m)
				}
			}
			if err != nil {
				return fmt.Errorf("cannot create repository: %w", err)
			}
			return r.Close()
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().StringVar(&mode, "mode", string(repo.ModeBare), "storage mode: archive, bare, bare-user or bare-user-only")
	cmd.RegisterFlagCompletionFunc("mode", completeModes)
	return cmd
}
