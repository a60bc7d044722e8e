package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/oci"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysroot"
)

// imageFlags are the registry flags of the commands that follow an image.
type imageFlags struct {
	reg    oci.RegistryOptions
	policy string
}

func (f *imageFlags) register(cmd *cobra.Command) {
	addRegistryFlags(cmd, &f.reg)
	cmd.Flags().StringVar(&f.policy, "policy", oci.DefaultPolicyFile, "containers policy (policy.json) that ostree-image-signed: references must satisfy")
}

// isImageArg says whether a deploy or rebase argument names an image rather than a
// revision of the sysroot repository.
func isImageArg(s string) bool {
	return strings.HasPrefix(s, "docker://") || strings.HasPrefix(s, "oci:") ||
		strings.HasPrefix(s, "oci-archive:") || sysroot.IsImageReference(s)
}

// imagePuller is the sysroot.ImagePuller of the command line: internal/oci with the
// registry flags and the containers policy.
type imagePuller struct {
	cmd   *cobra.Command
	flags imageFlags
	res   *oci.FollowResult // the last result
}

var _ sysroot.ImagePuller = (*imagePuller)(nil)

func (p *imagePuller) PullImage(ctx context.Context, r *repo.Repo, imgref, have string, check bool) (ostree.Checksum, string, error) {
	opts := oci.FollowOptions{Policy: p.flags.policy, Have: have, Check: check}
	opts.RegistryOptions = p.flags.reg
	var bar *progress
	if !check {
		bar = newProgress(p.cmd, "pull", -1, true)
		opts.Progress = bar
	}
	res, err := oci.Follow(ctx, r, imgref, opts)
	if bar != nil {
		bar.Finish()
	}
	if err != nil {
		return ostree.Checksum{}, "", err
	}
	p.res = res
	return res.Commit, res.Digest, nil
}

// deployImage imports the image arg names (docker://…, or an origin's
// ostree-unverified-registry:/ostree-image-signed: reference) and deploys it with the
// image reference as the origin, so that strata upgrade follows its tag.
func deployImage(cmd *cobra.Command, s *sysroot.Sysroot, osname, arg string, flags imageFlags, opts sysroot.DeployOptions) (sysroot.Deployment, error) {
	ir, err := oci.ParseImageReference(arg)
	if err != nil {
		return sysroot.Deployment{}, err
	}
	p := &imagePuller{cmd: cmd, flags: flags}
	commit, digest, err := p.PullImage(cmd.Context(), s.Repo(), ir.String(), "", false)
	if err != nil {
		return sysroot.Deployment{}, err
	}
	opts.Refspec, opts.ImageDigest = ir.String(), digest
	return deployKeepingLayer(cmd, s, osname, commit.String(), opts)
}

func newRebaseCmd() *cobra.Command {
	var (
		f      nodeFlags
		img    imageFlags
		osname string
		stage  bool
	)
	cmd := &cobra.Command{
		Use:   "rebase [--sysroot S] [--os NAME] IMAGE|REMOTE:REF [--stage]",
		Short: "Make the node follow another image or remote ref, and deploy it",
		Long: `Switch what the node follows, as rpm-ostree rebase and bootc switch do: pull
IMAGE or REMOTE:REF, deploy it as the next default (strata deploy semantics:
/etc merged, kernel arguments kept, one atomic switch on disk) and record it as
the origin, so that strata upgrade follows it from then on.

IMAGE is a registry image, docker://HOST/NAME:TAG (recorded as
ostree-unverified-registry:HOST/NAME:TAG), or an origin reference as rpm-ostree
spells it: ostree-unverified-registry:HOST/NAME:TAG, or
ostree-image-signed:docker://HOST/NAME:TAG, which every pull checks against
the containers policy (--policy; sigstoreSigned keys) before fetching a layer.
Layers the repository has are not downloaded again (docs/oci.md).

Layered packages (strata install, override remove) are kept: they are
installed again on the new base before it is deployed, and a package that
cannot be installed there stops the rebase, naming it (docs/layering.md).`,
		Args: argNames("IMAGE|REMOTE:REF"),
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			name := osname
			if name == "" {
				var err error
				if name, err = s.DefaultOS(); err != nil {
					return usageError{fmt.Errorf("cannot rebase onto %s: %w; give --os NAME", args[0], err)}
				}
			}
			bar := newProgress(cmd, "deploy", -1, false)
			opts := sysroot.DeployOptions{Stage: stage, Progress: bar}
			var d sysroot.Deployment
			var err error
			if isImageArg(args[0]) {
				d, err = deployImage(cmd, s, name, args[0], img, opts)
			} else {
				d, err = rebaseRemote(cmd, s, name, args[0], opts)
			}
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot rebase onto %s: %w", args[0], err)
			}
			verb := "Rebased onto %s; it boots next."
			if stage {
				verb = "Rebased onto %s (staged); it boots next."
			}
			return f.printDeployment(cmd, s, d, verb)
		}),
	}
	f.register(cmd, "print the new deployment as JSON")
	img.register(cmd)
	cmd.Flags().StringVar(&osname, "os", "", "stateroot (default: the booted one, else the only one)")
	cmd.Flags().BoolVar(&stage, "stage", false, "prepare the deployment; switch to it at shutdown (strata finalize)")
	return cmd
}

// rebaseRemote pulls REMOTE:REF (verified with the remote's keys) and deploys it with that
// refspec as the origin.
func rebaseRemote(cmd *cobra.Command, s *sysroot.Sysroot, osname, refspec string, opts sysroot.DeployOptions) (sysroot.Deployment, error) {
	remote, ref, err := ostree.ParseRefspec(refspec)
	if err != nil {
		return sysroot.Deployment{}, err
	}
	if remote == "" {
		return sysroot.Deployment{}, usageError{fmt.Errorf("%s names no remote: give REMOTE:REF or an image (docker://HOST/NAME:TAG)", refspec)}
	}
	p := &remotePuller{cmd: cmd}
	commit, err := p.Pull(cmd.Context(), s.Repo(), remote, ref, false)
	if err != nil {
		return sysroot.Deployment{}, fmt.Errorf("pulling %s: %w", refspec, err)
	}
	opts.Refspec = remote + ":" + ref
	return deployKeepingLayer(cmd, s, osname, commit.String(), opts)
}
