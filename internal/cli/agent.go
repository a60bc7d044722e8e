package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/agent"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/graph"
	"github.com/strata-os/strata/internal/oci"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/sysroot"
)

// sysrootDeployer is the agent's Deployer on a sysroot: it pulls a release through the booted
// deployment's origin remote (verified as `strata upgrade` verifies), stages it locked, and on
// finalization unlocks it and reboots, so that the staged deployment is written into the boot
// configuration at shutdown.
//
// A deployment whose origin is a container image follows image releases instead (the graph's
// oci scheme, payload HOST/NAME@sha256:…): the image pinned by the release's digest is
// imported, verified as the origin's reference says, and staged with the origin keeping the
// tag it follows and recording the new digest.
type sysrootDeployer struct {
	cmd    *cobra.Command
	path   string
	reboot []string
	images imageFlags
	// opts are passed to every sysroot.Open (tests name the booted deployment).
	opts []sysroot.Option
	// superblocks carries the delta superblock DownloadSize fetched to Stage's pull.
	superblocks pull.SuperblockCache
}

// payloadOf is how the agent names deployment d: its commit checksum, or for an image origin
// the image's repository pinned to the digest it was imported from.
func payloadOf(s *sysroot.Sysroot, d sysroot.Deployment) string {
	if sysroot.KindOf(d.Refspec) == sysroot.OriginImage {
		if ir, err := oci.ParseImageReference(d.Refspec); err == nil && d.ImageDigest != "" {
			if p, err := ir.DigestRef(d.ImageDigest); err == nil {
				return p
			}
		}
	}
	return baseCommit(s, d).String()
}

// baseCommit is the commit a release names for deployment d: releases name base commits, and
// a layered deployment runs one derived from its base (docs/layering.md). A derived commit
// whose parent cannot be read counts as its own base.
func baseCommit(s *sysroot.Sysroot, d sysroot.Deployment) ostree.Checksum {
	if c, err := s.BaseCommit(d); err == nil {
		return c
	}
	return d.Checksum
}

var _ agent.Deployer = (*sysrootDeployer)(nil)

// stageBase returns the deployment a staged update starts from and whose origin it keeps, as
// `strata upgrade` does (sysroot.UpgradeBase): the pending deployment when one waits for the
// next boot (a layering command or a rebase not booted yet, whose packages and origin must not
// be lost), else the booted one.
func stageBase(s *sysroot.Sysroot) (sysroot.Deployment, error) {
	if d, ok := s.UpgradeBase(""); ok {
		return d, nil
	}
	return base(s)
}

// base returns the deployment the node runs: the booted one, else the default.
func base(s *sysroot.Sysroot) (sysroot.Deployment, error) {
	if d, ok := s.Booted(); ok {
		return d, nil
	}
	ds := s.Deployments()
	for _, d := range ds {
		if !d.Staged {
			return d, nil
		}
	}
	return sysroot.Deployment{}, errors.New("the sysroot has no deployment")
}

func (d *sysrootDeployer) Status(context.Context) (agent.NodeStatus, error) {
	s, err := openSysroot(d.path, d.opts...)
	if err != nil {
		return agent.NodeStatus{}, err
	}
	defer s.Close()
	b, err := base(s)
	if err != nil {
		return agent.NodeStatus{}, err
	}
	ns := agent.NodeStatus{Booted: agent.Release{Payload: payloadOf(s, b), Scheme: graph.SchemeChecksum}}
	if sysroot.KindOf(b.Refspec) == sysroot.OriginImage {
		ns.Booted.Scheme = graph.SchemeOCI
	}
	if lb := readLayerBlock(s, b.OSName); lb != nil {
		ns.BlockedBy = "layering"
		ns.Blocked = fmt.Sprintf("the layered packages %s cannot be installed on %s: %s", strings.Join(lb.Packages, ", "), lb.Base, lb.Reason)
	}
	if c, err := s.Repo().ReadCommit(baseCommit(s, b)); err == nil {
		ns.Booted.Version = c.Version()
	}
	for _, dep := range s.Deployments() {
		if dep.Staged {
			ns.Staged = payloadOf(s, dep)
		} else {
			ns.Deployed = append(ns.Deployed, payloadOf(s, dep))
		}
	}
	return ns, nil
}

// DownloadSize is known up front from an image's manifest, and for a commit only from a static
// delta's superblock: an object pull learns its size while it walks the commit's trees.
func (d *sysrootDeployer) DownloadSize(ctx context.Context, r agent.Release) (int64, error) {
	s, err := openSysroot(d.path, d.opts...)
	if err != nil {
		return 0, err
	}
	defer s.Close()
	b, err := stageBase(s)
	if err != nil {
		return 0, err
	}
	if r.Scheme == graph.SchemeOCI {
		return d.imageSize(ctx, s, b, r)
	}
	return deltaSize(ctx, s, b, r, &d.superblocks)
}

// imageSize is what the repository lacks of the release's image: its layers are listed in the
// manifest, so it is known before the pull.
func (d *sysrootDeployer) imageSize(ctx context.Context, s *sysroot.Sysroot, b sysroot.Deployment, r agent.Release) (int64, error) {
	ir, err := oci.ParseImageReference(b.Refspec)
	if err != nil {
		return 0, err
	}
	pinned := oci.ImageReference{Ref: oci.Ref{Transport: oci.TransportRegistry, Name: r.Payload}, Signed: ir.Signed}
	opts := oci.FollowOptions{Policy: d.images.policy, Check: true}
	opts.RegistryOptions = d.images.reg
	res, err := oci.Follow(ctx, s.Repo(), pinned.String(), opts)
	if err != nil {
		return 0, err
	}
	return res.BytesToFetch, nil
}

// deltaSize is the size of the delta from base deployment b's base commit to the release that
// the origin remote offers, which Stage then uses.
func deltaSize(ctx context.Context, s *sysroot.Sysroot, b sysroot.Deployment, r agent.Release, superblocks *pull.SuperblockCache) (int64, error) {
	sum, err := ostree.ParseChecksum(r.Payload)
	if err != nil {
		return 0, fmt.Errorf("release %s: payload %q is not a commit checksum: %w", r.Version, r.Payload, err)
	}
	remote, _, err := ostree.ParseRefspec(b.Refspec)
	if err != nil || remote == "" {
		return 0, fmt.Errorf("the booted deployment's origin %q names no remote", b.Refspec)
	}
	policy, err := pull.PolicyFromRemote(s.Repo(), remote, nil, false)
	if err != nil {
		return 0, trustHint(err, remote)
	}
	opts := pull.Options{Remote: remote, Superblocks: superblocks}
	policy.Apply(&opts)
	from := baseCommit(s, b)
	n, err := pull.DeltaSize(ctx, s.Repo(), opts, from, sum)
	if errors.Is(err, errdefs.ErrNotFound) {
		return 0, fmt.Errorf("unknown before the pull: %s offers no static delta from %s to %s", remote, from, sum)
	}
	return n, err
}

func (d *sysrootDeployer) Stage(ctx context.Context, r agent.Release, progress func(done, total int64)) error {
	s, err := openSysroot(d.path, d.opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	b, err := stageBase(s)
	if err != nil {
		return err
	}
	if r.Scheme == graph.SchemeOCI {
		return d.stageImage(ctx, s, b, r, progress)
	}
	sum, err := ostree.ParseChecksum(r.Payload)
	if err != nil {
		return fmt.Errorf("release %s: payload %q is not a commit checksum: %w", r.Version, r.Payload, err)
	}
	remote, ref, err := ostree.ParseRefspec(b.Refspec)
	if err != nil || remote == "" {
		return fmt.Errorf("the booted deployment's origin %q names no remote to pull %s from (deploy REMOTE:REF)", b.Refspec, r.Version)
	}
	p := &remotePuller{cmd: d.cmd, from: baseCommit(s, b), superblocks: &d.superblocks}
	got, err := p.Pull(ctx, s.Repo(), remote, ref+"@"+sum.String(), false)
	if err != nil {
		return fmt.Errorf("pulling %s (%s) from %s: %w", r.Version, sum, remote, err)
	}
	progress(p.bytes, p.bytes)
	if got != sum {
		return fmt.Errorf("pulled %s but the release is %s", got, sum)
	}
	deploy, err := s.Prepare(ctx, b, sum, preparers(d.cmd))
	if err != nil {
		return fmt.Errorf("preparing %s (%s): %w", r.Version, sum, err)
	}
	// Deploy replaces an earlier staged deployment (a stale update) by itself.
	_, err = s.Deploy(ctx, b.OSName, deploy.String(), sysroot.DeployOptions{Refspec: b.Refspec, Origin: sysroot.UpgradeOrigin(b), Stage: true, LockFinalization: true})
	return err
}

// stageImage imports the image release r pins (verified as the base's origin says: an
// ostree-image-signed: origin requires the containers policy's signatures) and stages it
// locked, the origin still following the base's tag.
func (d *sysrootDeployer) stageImage(ctx context.Context, s *sysroot.Sysroot, b sysroot.Deployment, r agent.Release, progress func(done, total int64)) error {
	if sysroot.KindOf(b.Refspec) != sysroot.OriginImage {
		return fmt.Errorf("release %s is an image (%s) but the booted deployment's origin %q is not (strata rebase IMAGE)", r.Version, r.Payload, b.Refspec)
	}
	base, err := oci.ParseImageReference(b.Refspec)
	if err != nil {
		return err
	}
	pinned := oci.ImageReference{Ref: oci.Ref{Transport: oci.TransportRegistry, Name: r.Payload}, Signed: base.Signed}
	if _, digest, ok := strings.Cut(r.Payload, "@"); !ok || !strings.HasPrefix(digest, "sha256:") {
		return fmt.Errorf("release %s: payload %q is not an image pinned by digest (NAME@sha256:...)", r.Version, r.Payload)
	}
	opts := oci.FollowOptions{Policy: d.images.policy}
	opts.RegistryOptions = d.images.reg
	opts.Progress = &agentProgress{report: progress}
	res, err := oci.Follow(ctx, s.Repo(), pinned.String(), opts)
	if err != nil {
		return fmt.Errorf("pulling %s (%s): %w", r.Version, r.Payload, err)
	}
	if want := r.Payload[strings.IndexByte(r.Payload, '@')+1:]; res.Digest != want {
		return fmt.Errorf("pulled %s but the release is %s", res.Digest, want)
	}
	deploy, err := s.Prepare(ctx, b, res.Commit, preparers(d.cmd))
	if err != nil {
		return fmt.Errorf("preparing %s (%s): %w", r.Version, r.Payload, err)
	}
	// The base's origin, as for a remote ref: the layered packages and the
	// rest of what the node recorded follow the update; the digest is the
	// new image's.
	_, err = s.Deploy(ctx, b.OSName, deploy.String(), sysroot.DeployOptions{Refspec: b.Refspec, Origin: sysroot.UpgradeOrigin(b),
		ImageDigest: res.Digest, Stage: true, LockFinalization: true})
	return err
}

// agentProgress reports an image download to the agent (bytes done of the total, which is
// known before the first layer).
type agentProgress struct {
	report      func(done, total int64)
	done, total int64
}

func (p *agentProgress) SetTotal(n int64) { p.total = n; p.report(p.done, p.total) }
func (p *agentProgress) Add(n int64)      { p.done += n; p.report(p.done, p.total) }

func (d *sysrootDeployer) DropStaged(ctx context.Context) error {
	s, err := openSysroot(d.path, d.opts...)
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.DropStaged(ctx)
	return err
}

func (d *sysrootDeployer) FinalizeAndReboot(ctx context.Context, r agent.Release) error {
	s, err := openSysroot(d.path, d.opts...)
	if err != nil {
		return err
	}
	st, ok := s.Staged()
	if !ok || payloadOf(s, st) != r.Payload {
		s.Close()
		return fmt.Errorf("%s is not the staged deployment", r.Payload)
	}
	err = s.UnlockStaged(ctx)
	s.Close()
	if err != nil {
		return err
	}
	if len(d.reboot) == 0 {
		return nil
	}
	out, err := exec.CommandContext(ctx, d.reboot[0], d.reboot[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(d.reboot, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// streamOf names the stream a deployment follows: the last element of its origin's ref
// (os/stable → stable).
//
// For an image origin it is the tag (HOST/NAME:stable → stable).
func streamOf(refspec string) string {
	if sysroot.KindOf(refspec) == sysroot.OriginImage {
		if ir, err := oci.ParseImageReference(refspec); err == nil {
			return ir.Tag()
		}
		return ""
	}
	_, ref, err := ostree.ParseRefspec(refspec)
	if err != nil || ref == "" {
		return ""
	}
	return path.Base(ref)
}

func newAgentCmd() *cobra.Command {
	var root, sysrootPath, stateDir, socket, metricsListen, rebootCmd, stream string
	var images imageFlags
	cmd := &cobra.Command{
		Use:   "agent [--root /] [--sysroot /]",
		Short: "Run the update agent: follow the release graph and reboot into updates when allowed",
		Long: `Run the node's update agent (strata-agent.service). It reads its configuration from
TOML drop-ins (usr/lib/strata/agent.d, etc/strata/agent.d, run/strata/agent.d, and
Zincati's config.d directories, with Zincati's keys and precedence), asks the
release graph (cincinnati.base_url) where to go next, pulls and stages the update
(locked), and reboots into it when its strategy allows: at once, inside
maintenance windows, with a fleet-wide reboot slot (updates.fleet_lock.base_url),
or windows and a slot together (strategy "periodic+fleet_lock"). Reboots wait up
to ten minutes while users are logged in. A release this node rolled back from is
never tried again. 'strata update' talks to it over its socket.
docs/agent.md tells the whole story.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := agent.LoadConfig(root)
			if err != nil {
				return err
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
			id, err := agent.NodeID(root, cfg)
			if err != nil {
				return err
			}
			dep := &sysrootDeployer{cmd: cmd, path: sysrootPath, reboot: strings.Fields(rebootCmd), images: images}
			s, err := openSysroot(sysrootPath)
			if err != nil {
				return err
			}
			b, err := base(s)
			s.Close()
			if err != nil {
				return err
			}
			if stream == "" {
				if stream = streamOf(b.Refspec); stream == "" {
					return fmt.Errorf("cannot tell the stream from the origin %q: give --stream", b.Refspec)
				}
			}
			// A node that follows an image asks the graph for image payloads.
			ociPayloads := sysroot.KindOf(b.Refspec) == sysroot.OriginImage
			vars := map[string]string{"basearch": goArchToBasearch(runtime.GOARCH), "group": cfg.Identity.Group, "platform": platform(root), "stream": stream}
			graphURL, err := agent.Expand(cfg.Cincinnati.BaseURL, vars)
			if err != nil {
				return err
			}
			strategy, err := strategyOf(cfg, vars, id)
			if err != nil {
				return err
			}
			a := agent.New(agent.Options{
				Config: cfg, Deployer: dep, Strategy: strategy, Sessions: agent.Logind{}, Log: log,
				Graph: &agent.GraphClient{BaseURL: graphURL, HTTP: &http.Client{Timeout: 5 * time.Minute},
					Basearch: vars["basearch"], Stream: stream, Group: cfg.Identity.Group, NodeUUID: id, OCI: ociPayloads,
					Platform: vars["platform"], Wariness: cfg.Identity.RolloutWariness},
				StateDir: filepath.Join(root, stateDir), MOTDPath: filepath.Join(root, "run/motd.d/85-strata-deadend.motd"),
				// Between checks the agent sleeps for minutes (steady_interval_secs, 5 by
				// default): a collection per check returns the check's garbage to the system
				// instead of keeping up to the collector's 4 MB threshold resident.
				Idle: debug.FreeOSMemory,
			})
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			ln, err := agent.Listen(filepath.Join(root, socket))
			if err != nil {
				return err
			}
			srv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
			go srv.Serve(ln)
			defer srv.Close()
			if metricsListen != "" {
				mln, err := net.Listen("tcp", metricsListen)
				if err != nil {
					return err
				}
				msrv := &http.Server{Handler: a.Handler(), ReadHeaderTimeout: 10 * time.Second}
				go msrv.Serve(mln)
				defer msrv.Close()
			}
			log.Info("update agent started", "node", id, "stream", stream, "graph", graphURL, "strategy", strategy.Name(), "config", cfg.Sources)
			if err := a.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
				return err
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&root, "root", "/", "the node's root: configuration, machine id, state and socket are found beneath it")
	addSysrootFlag(cmd, &sysrootPath)
	cmd.Flags().StringVar(&stateDir, "state-dir", "var/lib/strata/agent", "where the agent keeps what outlives reboots, relative to --root")
	cmd.Flags().StringVar(&socket, "socket", agent.SocketPath, "the agent's socket, relative to --root")
	cmd.Flags().StringVar(&metricsListen, "metrics-listen", "", "also serve the API and /metrics on this TCP address (HOST:PORT)")
	cmd.Flags().StringVar(&rebootCmd, "reboot-command", "systemctl reboot", "the command that reboots the node ('' stages and unlocks only)")
	images.register(cmd)
	cmd.Flags().StringVar(&stream, "stream", "", "the stream to follow (default: the last element of the booted origin's ref)")
	return cmd
}

// platform is the node's platform, from the kernel's ignition.platform.id= (as Zincati reads
// it), else "metal".
func platform(root string) string {
	b, err := os.ReadFile(filepath.Join(root, "proc/cmdline"))
	if err == nil {
		for _, f := range strings.Fields(string(b)) {
			if v, ok := strings.CutPrefix(f, "ignition.platform.id="); ok {
				return v
			}
		}
	}
	return "metal"
}

func strategyOf(cfg agent.Config, vars map[string]string, id string) (agent.Strategy, error) {
	lock := func() (agent.FleetLock, error) {
		u, err := agent.Expand(cfg.Updates.FleetLock.BaseURL, vars)
		if err != nil {
			return agent.FleetLock{}, err
		}
		base, err := url.Parse(u)
		if err != nil {
			return agent.FleetLock{}, fmt.Errorf("updates.fleet_lock.base_url %q: %w", u, err)
		}
		return agent.FleetLock{Client: &fleetlock.Client{BaseURL: base, HTTP: &http.Client{Timeout: time.Minute},
			Params: fleetlock.ClientParams{ID: id, Group: cfg.Identity.Group}}}, nil
	}
	switch cfg.Updates.Strategy {
	case agent.StrategyFleetLock:
		return lock()
	case agent.StrategyPeriodic, agent.StrategyPeriodicAndLock:
		cal, err := cfg.Calendar()
		if err != nil {
			return nil, err
		}
		if cfg.Updates.Strategy == agent.StrategyPeriodic {
			return agent.Periodic{Calendar: cal}, nil
		}
		l, err := lock()
		return agent.Both{Periodic: agent.Periodic{Calendar: cal}, Lock: l}, err
	}
	return agent.Immediate{}, nil
}

func newUpdateCmd() *cobra.Command {
	var root string
	var asJSON, now bool
	client := func() *agent.Client { return agent.NewClient(filepath.Join(root, agent.SocketPath)) }
	status := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show what the update agent is doing and why it waits",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := client().Status(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(cmd.OutOrStdout(), st)
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "State: %s (strategy %s)\n", st.State, st.Strategy)
			fmt.Fprintf(w, "Booted: %s (%s)\n", termSafe(st.Booted.Version), st.Booted.Payload)
			if st.Target != nil {
				fmt.Fprintf(w, "Target: %s (%s)\n", termSafe(st.Target.Version), st.Target.Payload)
			}
			if st.Waiting != "" {
				fmt.Fprintf(w, "Waiting: %s\n", termSafe(st.Waiting))
			}
			if st.DownloadBytes > 0 {
				fmt.Fprintf(w, "Download: %d of %d bytes\n", st.DownloadedByte, st.DownloadBytes)
			}
			if st.Deadend != "" {
				fmt.Fprintf(w, "Dead end: %s\n", termSafe(st.Deadend))
			}
			if len(st.Denied) > 0 {
				fmt.Fprintf(w, "Never offered again: %s\n", strings.Join(st.Denied, ", "))
			}
			if st.LastCheck != nil {
				fmt.Fprintf(w, "Last check: %s\n", st.LastCheck.Format(time.RFC3339))
			}
			if st.NextCheck != nil {
				fmt.Fprintf(w, "Next check: %s\n", st.NextCheck.Format(time.RFC3339))
			}
			if st.LastError != "" {
				fmt.Fprintf(w, "Last error: %s\n", termSafe(st.LastError))
			}
			return nil
		},
	}
	status.Flags().BoolVar(&asJSON, "json", false, "print the status as JSON")
	check := &cobra.Command{
		Use:   "check",
		Short: "Make the update agent ask the release graph now",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return client().Check(cmd.Context())
		},
	}
	apply := &cobra.Command{
		Use:   "apply [--now]",
		Short: "Apply the next update; with --now at once, whatever the strategy says",
		Long: `Ask the update agent to look for an update now. With --now the next update goes
through at once: the node asks the graph as the least wary node of the fleet,
and the strategy (windows, fleet lock) and the logged-in-users delay are skipped
for this one update. It still goes through the same state machine: pulled and
verified, staged, then the reboot.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return client().Apply(cmd.Context(), now)
		},
	}
	apply.Flags().BoolVar(&now, "now", false, "override the strategy for this one update")
	g := newGroup("update", "Talk to the running update agent: status, check, apply", status, check, apply)
	g.PersistentFlags().StringVar(&root, "root", "/", "the node's root (where run/strata/agent.sock is)")
	return g
}
