package cli

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
	"github.com/strata-os/strata/internal/sysroot"
)

// remotePuller is the sysroot.Puller of the command line: internal/pull
// with the remote's URL and keys from the repository config.
type remotePuller struct {
	cmd      *cobra.Command
	keys     []sign.PublicKey
	noVerify bool
	bytes    int64
	// from is the commit the node runs: a static delta from it is used
	// when the remote offers none from the ref's current commit.
	from ostree.Checksum
	// superblocks, if set, holds delta superblocks fetched before (by the agent's sizing).
	superblocks *pull.SuperblockCache
}

var _ sysroot.Puller = (*remotePuller)(nil)

func (p *remotePuller) Pull(ctx context.Context, r *repo.Repo, remote, ref string, commitOnly bool) (ostree.Checksum, error) {
	policy, err := pull.PolicyFromRemote(r, remote, p.keys, p.noVerify)
	if err != nil {
		return ostree.Checksum{}, trustHint(err, remote)
	}
	opts := pull.Options{Remote: remote, Refs: []string{ref}, CommitOnly: commitOnly, DeltaFrom: p.from, Superblocks: p.superblocks}
	policy.Apply(&opts)
	var bar *pullProgress
	if !commitOnly {
		bar = &pullProgress{p: newProgress(p.cmd, "pull", -1, false)}
		opts.Progress = bar
	}
	res, err := pull.Pull(ctx, r, opts)
	if bar != nil {
		bar.p.Finish()
	}
	if err != nil {
		return ostree.Checksum{}, err
	}
	p.bytes += res.Bytes
	return res.Refs[0].Commit, nil
}

func newUpgradeCmd() *cobra.Command {
	var (
		f                 nodeFlags
		img               imageFlags
		osname            string
		keyFiles          []string
		check, stage, noV bool
	)
	cmd := &cobra.Command{
		Use:   "upgrade [--sysroot S] [--os NAME] [--check] [--stage]",
		Short: "Pull the origin's ref and deploy it if it changed",
		Long: `Follow the origin of the pending deployment (a rebase not booted yet), else of
the booted one, else of the default one: pull its
refspec (REMOTE:REF, with the remote's URL and verification keys from the
sysroot repository's config; a plain REF is read locally) and, if it names a
commit other than the current one, deploy it as the next default (strata
deploy semantics: /etc merged, one atomic switch on disk, effective on
reboot). --check fetches only the verified commit object and reports whether
an update is available; exit code 77 means none (as rpm-ostree
--unchanged-exit-77 does). --stage leaves the switch to shutdown.

An origin that is a local ref (no remote feeds it) or a pinned commit
(deployed by checksum) fetches nothing: upgrade says so and, when that
leaves the deployment where it is, exits with 78 rather than reporting "no
update". To follow a remote, deploy REMOTE:REF.

An origin that is a container image (strata rebase IMAGE) is followed by its
tag: the manifest digest the tag names now is compared with the one deployed;
a new one is verified (ostree-image-signed: against the containers policy),
only the layers the repository lacks are downloaded, and the image is
deployed.`,
		Args: noArgs,
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, _ []string) error {
			keys, err := sign.LoadTrustedKeyFiles(keyFiles...)
			if err != nil {
				return fmt.Errorf("cannot upgrade: %w", err)
			}
			p := &remotePuller{cmd: cmd, keys: keys, noVerify: noV}
			ip := &imagePuller{cmd: cmd, flags: img}
			if b, err := base(s); err == nil {
				p.from = baseCommit(s, b)
			}
			bar := newProgress(cmd, "deploy", -1, false)
			res, err := s.Upgrade(cmd.Context(), p, sysroot.UpgradeOptions{OSName: osname, Check: check,
				Deploy: sysroot.DeployOptions{Stage: stage, Progress: bar}, Prepare: preparers(cmd), Images: ip})
			bar.Finish()
			if err != nil {
				return fmt.Errorf("cannot upgrade: %w", err)
			}
			fetched := res.Origin == sysroot.OriginRemote || res.Origin == sysroot.OriginImage
			out := upgradeJSON{Refspec: res.Refspec, Origin: string(res.Origin), Fetched: fetched,
				Base: res.Base.Checksum.String(), Commit: res.Commit.String(),
				Version: res.Version, Available: res.Changed, Bytes: p.bytes, Digest: res.Digest}
			if ip.res != nil && ip.res.Pull != nil {
				out.Bytes += ip.res.Pull.BytesFetched
				out.LayersFetched, out.LayersSkipped = ip.res.Pull.LayersFetched, ip.res.Pull.LayersSkipped
			}
			if res.Deployed != nil {
				dj := toDeploymentJSON(s, *res.Deployed)
				out.Deployed = &dj
			}
			w := cmd.OutOrStdout()
			if f.json {
				if err := writeJSON(w, out); err != nil {
					return err
				}
			} else {
				v := ""
				if res.Version != "" {
					v = " (version " + res.Version + ")"
				}
				switch res.Origin {
				case sysroot.OriginLocalRef:
					fmt.Fprintf(w, "Origin is a local ref (%s); nothing fetched. Deploy REMOTE:REF to follow a remote.\n", res.Refspec)
				case sysroot.OriginCommit:
					fmt.Fprintf(w, "Origin is a pinned commit (%s); nothing fetched. Deploy REMOTE:REF to follow a remote.\n", res.Base.Checksum)
				}
				switch {
				case !res.Changed && !fetched:
					fmt.Fprintf(w, "Nothing to deploy: the deployment is at %s%s.\n", res.Commit, v)
				case !res.Changed:
					fmt.Fprintf(w, "No update available: %s is at %s%s.\n", res.Refspec, res.Commit, v)
				case check && res.Origin == sysroot.OriginImage:
					fmt.Fprintf(w, "Update available: %s -> %s%s.\n", res.Base.ImageDigest, res.Digest, v)
				case check:
					fmt.Fprintf(w, "Update available: %s -> %s%s.\n", res.Base.Checksum, res.Commit, v)
				case res.Deployed == nil:
					fmt.Fprintf(w, "%s%s is already deployed; reboot to use it.\n", res.Commit, v)
				default:
					fmt.Fprintf(w, "Deployed %s.%d%s; it boots next.\n", res.Deployed.Checksum, res.Deployed.Serial, v)
				}
			}
			if !res.Changed && !fetched {
				return exitCodeError{code: exitNothingFetched}
			}
			if check && !res.Changed {
				return exitCodeError{code: exitUnchanged}
			}
			return nil
		}),
	}
	f.register(cmd, "print the result as JSON")
	img.register(cmd)
	cmd.Flags().StringVar(&osname, "os", "", "stateroot to upgrade (default: the booted one)")
	cmd.Flags().BoolVar(&check, "check", false, "only look for an update (exit 77 if there is none)")
	cmd.Flags().BoolVar(&stage, "stage", false, "stage the new deployment; switch to it at shutdown (strata finalize)")
	cmd.Flags().StringArrayVar(&keyFiles, "trusted-key", nil, "file of trusted ed25519 public keys (default: the remote's keys)")
	cmd.Flags().BoolVar(&noV, "no-verify", false, "do not verify signatures")
	return cmd
}
