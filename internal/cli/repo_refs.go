package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

func newRepoRefsCmd() *cobra.Command {
	var (
		path, create, del string
		asJSON            bool
	)
	cmd := &cobra.Command{
		Use:   "refs --repo R [PREFIX] [--json] [--create NAME REV | --delete NAME]",
		Short: "List, create or delete refs",
		Long: `Without options, print every ref, local ones as NAME and remote-tracking ones as
REMOTE:NAME, sorted, like ostree refs. --create NAME=REV points the local ref
NAME at REV (a ref or commit checksum that must be stored); --delete NAME
removes a ref (REMOTE:NAME for a remote-tracking one). As with ostree refs,
PREFIX lists only the refs that start with it, and --create NAME REV (REV as
the argument) works as --create NAME=REV.`,
		Args:              argNames("[PREFIX or REV]"),
		ValidArgsFunction: completeRevs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if create != "" && del != "" {
				return usagef("--create and --delete cannot be combined")
			}
			r, err := openRepo(path)
			if err != nil {
				return err
			}
			defer r.Close()
			switch {
			case create != "":
				if len(args) == 1 {
					if strings.Contains(create, "=") {
						return usagef("give REV once: --create NAME REV or --create NAME=REV")
					}
					create += "=" + args[0]
				}
				return createRef(r, create)
			case del != "":
				remote, name, err := ostree.ParseRefspec(del)
				if err != nil {
					return usageError{err}
				}
				if err := r.DeleteRef(remote, name); err != nil {
					return fmt.Errorf("cannot delete ref: %w", err)
				}
				return nil
			}
			if del != "" && len(args) > 0 {
				return extraArgs(cmd, args)
			}
			refs, err := r.ListRefs()
			if err != nil {
				return fmt.Errorf("cannot list refs: %w", err)
			}
			if len(args) == 1 {
				refs = slices.DeleteFunc(refs, func(f repo.Ref) bool { return !strings.HasPrefix(f.String(), args[0]) })
			}
			if asJSON {
				out := []refJSON{}
				for _, f := range refs {
					out = append(out, refJSON{Name: f.Name, Remote: f.Remote, Refspec: f.String(), Checksum: f.Checksum.String()})
				}
				return writeJSON(cmd.OutOrStdout(), out)
			}
			var b strings.Builder
			for _, f := range refs {
				b.WriteString(f.String() + "\n")
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), b.String())
			return err
		},
	}
	addRepoFlag(cmd, &path)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.Flags().StringVar(&create, "create", "", "create or move local ref NAME to REV (NAME=REV)")
	cmd.Flags().StringVar(&del, "delete", "", "delete ref NAME")
	return cmd
}

func createRef(r *repo.Repo, spec string) error {
	name, rev, ok := strings.Cut(spec, "=")
	if !ok || name == "" || rev == "" {
		return usagef("--create wants NAME REV (or NAME=REV), got %q", spec)
	}
	if err := ostree.ValidateRef(name); err != nil {
		return usageError{err}
	}
	c, err := r.ResolveRev(rev)
	if err != nil {
		return fmt.Errorf("cannot create ref %s: %w", name, err)
	}
	if _, err := r.ReadCommit(c); err != nil {
		return fmt.Errorf("cannot create ref %s: %w", name, err)
	}
	if err := r.SetRef("", name, c); err != nil {
		return fmt.Errorf("cannot create ref %s: %w", name, err)
	}
	return nil
}
