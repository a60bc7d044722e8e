package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

func newManCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "man DIR",
		Short: "Write man pages for every command into DIR",
		Long: `Generate the man pages of strata from its command tree, one page per command
(strata.1, strata-repo-commit.1, ...), into DIR, which is created if needed.
make man writes them into man/.`,
		Args: argNames("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return fmt.Errorf("cannot write man pages: %w", err)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return fmt.Errorf("cannot write man pages: %w", err)
			}
			root := cmd.Root()
			root.DisableAutoGenTag = true // pages without a date reproduce byte for byte
			hdr := &doc.GenManHeader{Title: "STRATA", Section: "1", Source: "strata " + version, Manual: "strata manual"}
			if err := doc.GenManTree(root, hdr, dir); err != nil {
				return fmt.Errorf("cannot write man pages into %s: %w", dir, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Wrote man pages into %s\n", dir)
			return nil
		},
	}
	return cmd
}
