package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/sysroot"
)

func newDeployCmd() *cobra.Command {
	var (
		f               nodeFlags
		img             imageFlags
		osname, refspec string
		kargs           []string
		stage           bool
	)
	cmd := &cobra.Command{
		Use:   "deploy [--sysroot S] [--os NAME] REV|IMAGE [--karg K=V]... [--stage]",
		Short: "Deploy a commit of the sysroot's repository as the next default",
		Long: `Check out REV (a ref or commit checksum of S/ostree/repo) as a new deployment,
three-way merge /etc from the current deployment, install its kernel and
initramfs, and make it the default for the next boot in one atomic switch.
Deployments other than the booted, the merge (current) and the pinned ones are
then removed. The running system is not changed.

The kernel arguments of the current deployment are kept; each --karg K=V
replaces the argument of key K, or is added (as ostree admin deploy --karg). --stage prepares the deployment but leaves the /etc
merge and the switch to 'strata finalize', run at shutdown.

Layered packages (strata install, override remove) of the current deployment
are installed again on REV, as rpm-ostree deploy does: the deployment runs a
commit derived from REV, and a package that cannot be installed there stops
the deploy before anything changes, naming it (docs/layering.md).

IMAGE (docker://HOST/NAME:TAG, or ostree-unverified-registry:… and
ostree-image-signed:docker://… as rpm-ostree spells them) is imported first
and recorded as the origin, as strata rebase does: strata upgrade then follows
the image's tag.`,
		Args:              argNames("REV|IMAGE"),
		ValidArgsFunction: completeSysrootRefs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			name := osname
			if name == "" {
				var err error
				if name, err = s.DefaultOS(); err != nil {
					return usageError{fmt.Errorf("cannot deploy %s: %w; give --os NAME", args[0], err)}
				}
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
				var err error
				if opts.Kargs, err = sysroot.EditKargs(base, sysroot.KargsEdit{Set: kargs}); err != nil {
					return fmt.Errorf("cannot deploy %s: %w", args[0], err)
				}
			}
			var d sysroot.Deployment
			var err error
			if isImageArg(args[0]) {
				if refspec != "" {
					return usageError{fmt.Errorf("cannot deploy %s: --origin-refspec is for revisions; an image is its own origin", args[0])}
				}
				d, err = deployImage(cmd, s, name, args[0], img, opts)
			} else {
				d, err = deployKeepingLayer(cmd, s, name, args[0], opts)
			}
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot deploy %s: %w", args[0], err)
			}
			verb := "Deployed %s; it boots next."
			if stage {
				verb = "Staged %s; it boots next."
			}
			return f.printDeployment(cmd, s, d, verb)
		}),
	}
	f.register(cmd, "print the new deployment as JSON")
	img.register(cmd)
	cmd.Flags().StringVar(&osname, "os", "", "stateroot (default: the booted one, else the only one)")
	cmd.Flags().StringArrayVar(&kargs, "karg", nil, "kernel argument KEY=VALUE: replaces KEY's inherited value or is added (repeatable)")
	cmd.Flags().StringVar(&refspec, "origin-refspec", "", "refspec to record in the origin (default: REV if it is a ref)")
	cmd.Flags().BoolVar(&stage, "stage", false, "prepare the deployment; switch to it at shutdown (strata finalize)")
	return cmd
}
