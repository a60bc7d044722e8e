package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

func newDeployCmd() *cobra.Command {
	var (
		path, osname, refspec string
		kargs                 []string
		stage, asJS           bool
	)
	cmd := &cobra.Command{
		Use:   "deploy [--sysroot S] [--os NAME] REV [--karg K=V]... [--stage]",
		Short: "Deploy a commit of the sysroot's repository as the next default",
		Long: `Check out REV (a ref or commit checksum of S/ostree/repo) as a new deployment,
three-way merge /etc from the current deployment, install its kernel and
initramfs, and make it the default for the next boot in one atomic switch.
Deployments other than the booted, the merge (current) and the pinned ones are
then removed. The running system is not changed.

The kernel arguments of the current deployment are kept; each --karg K=V
replaces the argument of key K, or is added (as ostree admin deploy --karg). --stage prepares the deployment but leaves the /etc
merge and the switch to 'strata finalize', run at shutdown.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openSysroot(path)
			if err != nil {
				return err
			}
			defer s.Close()
			name, err := pickOS(s, osname)
			if err != nil {
				return err
			}
			bar := newProgress(cmd, "deploy", -1, false)
			opts := sysroot.DeployOptions{Refspec: refspec, Stage: stage, Progress: bar}
			if len(kargs) > 0 {
				// As ostree admin deploy --karg: each argument replaces
				// the same key of the current deployment's, or is added.
				var base []string
				if m, ok := s.MergeDeployment(name); ok {
					base = m.Kargs
				}
				if opts.Kargs, err = sysroot.EditKargs(base, sysroot.KargsEdit{Set: kargs}); err != nil {
					return fmt.Errorf("cannot deploy %s: %w", args[0], err)
				}
			}
			d, err := s.Deploy(cmd.Context(), name, args[0], opts)
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot deploy %s: %w", args[0], err)
			}
			if err := s.Reload(); err != nil {
				return fmt.Errorf("cannot reload sysroot: %w", err)
			}
			dj := toDeploymentJSON(s, findDeployment(s, d))
			if asJS {
				return writeJSON(cmd.OutOrStdout(), dj)
			}
			verb := "Deployed"
			if stage {
				verb = "Staged"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s %s.%d (%s); it boots next.\n", verb, d.Checksum, d.Serial, d.OSName)
			return nil
		},
	}
	addSysrootFlag(cmd, &path)
	cmd.Flags().StringVar(&osname, "os", "", "stateroot (default: the booted one, else the only one)")
	cmd.Flags().StringArrayVar(&kargs, "karg", nil, "kernel argument KEY=VALUE: replaces KEY's inherited value or is added (repeatable)")
	cmd.Flags().StringVar(&refspec, "origin-refspec", "", "refspec to record in the origin (default: REV if it is a ref)")
	cmd.Flags().BoolVar(&stage, "stage", false, "prepare the deployment; switch to it at shutdown (strata finalize)")
	cmd.Flags().BoolVar(&asJS, "json", false, "print the new deployment as JSON")
	return cmd
}

// pickOS returns the stateroot to deploy in: the one given, else the
// booted deployment's, else the only stateroot with deployments, else the
// only stateroot directory.
func pickOS(s *sysroot.Sysroot, osname string) (string, error) {
	if osname != "" {
		return osname, nil
	}
	if b, ok := s.Booted(); ok {
		return b.OSName, nil
	}
	ents, err := os.ReadDir(filepath.Join(s.Path(), "ostree/deploy"))
	if err != nil {
		return "", fmt.Errorf("cannot list stateroots: %w", err)
	}
	var names []string
	for _, e := range ents {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	if len(names) == 1 {
		return names[0], nil
	}
	return "", usagef("cannot pick a stateroot among %v: give --os", names)
}

// findDeployment returns the loaded deployment matching d (its index and
// flags are those after the operation), or d itself.
func findDeployment(s *sysroot.Sysroot, d sysroot.Deployment) sysroot.Deployment {
	for _, x := range s.Deployments() {
		if x.OSName == d.OSName && x.Checksum == d.Checksum && x.Serial == d.Serial {
			return x
		}
	}
	return d
}
