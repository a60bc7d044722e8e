package cli

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/repo"
)

// Shell completion (strata completion bash|zsh|fish): refs, modes and
// deployment indexes come from the repository or sysroot the command line
// names, read without locks; anything unreadable completes to nothing.

// completeRevs completes the first n arguments, each a REV, with the
// refs of --repo.
func completeRevs(n int) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
		if len(args) >= n {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		path, _ := cmd.Flags().GetString("repo")
		return refsIn(path, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// completeFirstRev completes the REV of "REV PATH" or "REV DEST"; what
// follows is a path, completed by the shell.
func completeFirstRev(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	return completeRevs(1)(cmd, args, toComplete)
}

// completeSysrootRefs completes a REV argument with the refs of the
// repository of --sysroot.
func completeSysrootRefs(cmd *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	path, _ := cmd.Flags().GetString("sysroot")
	return refsIn(filepath.Join(path, "ostree/repo"), toComplete), cobra.ShellCompDirectiveNoFileComp
}

func refsIn(path, prefix string) []string {
	if path == "" {
		return nil
	}
	r, err := repo.Open(path)
	if err != nil {
		return nil
	}
	defer r.Close()
	refs, err := r.ListRefs()
	if err != nil {
		return nil
	}
	var out []string
	for _, f := range refs {
		if s := f.String(); strings.HasPrefix(s, prefix) {
			out = append(out, s+"\t"+f.Checksum.String()[:12])
		}
	}
	return out
}

// completeDeploymentIndex completes an INDEX with the deployments of
// --sysroot, described as strata status shows them.
func completeDeploymentIndex(cmd *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if cmd.Flags().Lookup("deploy-index") == nil && len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	path, _ := cmd.Flags().GetString("sysroot")
	s, err := openSysroot(path)
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	defer s.Close()
	var out []string
	for _, d := range s.Deployments() {
		desc := fmt.Sprintf("%s:%s", d.OSName, d.Checksum.String()[:12])
		if d.Refspec != "" {
			desc = fmt.Sprintf("%s:%s %s", d.OSName, d.Refspec, d.Checksum.String()[:12])
		}
		if d.Booted {
			desc += " (booted)"
		}
		out = append(out, fmt.Sprintf("%d\t%s", d.Index, desc))
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeModes completes --mode with the repository modes.
func completeModes(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
	return []string{
		string(repo.ModeArchive) + "\tcompressed files, for serving over HTTP",
		string(repo.ModeBare) + "\tfiles as they are, owners and modes applied (root)",
		string(repo.ModeBareUser) + "\towners and modes kept in an xattr (any user)",
		string(repo.ModeBareUserOnly) + "\tno owners or xattrs (any user)",
	}, cobra.ShellCompDirectiveNoFileComp
}
