package cli

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
)

// layerFlags are the flags shared by install, uninstall and override.
type layerFlags struct {
	nodeFlags
	osname  string
	stage   bool
	verbose bool
	// install only: --apply-live, and the running system's root it acts
	// on (tests give a directory).
	applyLive bool
	liveRoot  string
}

func (f *layerFlags) register(cmd *cobra.Command) {
	f.nodeFlags.register(cmd, "print the new deployment and the layer as JSON")
	cmd.Flags().StringVar(&f.osname, "os", "", "stateroot (default: the booted one, else the default deployment's)")
	cmd.Flags().BoolVar(&f.stage, "stage", false, "stage the new deployment; switch to it at shutdown (strata finalize)")
	cmd.Flags().BoolVarP(&f.verbose, "verbose", "v", false, "show apt's and dpkg's output")
}

// layerJSON is the --json output of install, uninstall and override.
type layerJSON struct {
	Base       string               `json:"base_commit"`
	Commit     string               `json:"commit"`
	Requested  []string             `json:"requested_packages"`
	Local      []string             `json:"requested_local_packages"`
	Removed    []string             `json:"requested_base_removals"`
	Added      []compose.Package    `json:"packages_added"`
	BaseRemove []compose.Package    `json:"base_removals"`
	Stats      *compose.DeriveStats `json:"stats,omitempty"`
	Deployed   deploymentJSON       `json:"deployed"`
	// LiveApplied counts the paths of /usr applied to the running system
	// (--apply-live).
	LiveApplied int `json:"live_applied,omitempty"`
}

// changeLayer derives the commit that edit's layering asks for from the
// base of the stateroot's merge deployment (the pending one if any, so
// that changes add up as rpm-ostree's do) and deploys it with the new
// origin. The booted deployment keeps running; nothing is deployed when
// the derivation fails.
func (f *layerFlags) changeLayer(cmd *cobra.Command, s *sysroot.Sysroot, edit func(l *sysroot.Layering, osname string) error) error {
	osname := f.osname
	if osname == "" {
		if b, ok := s.Booted(); ok {
			osname = b.OSName
		} else if ds := s.Deployments(); len(ds) > 0 {
			osname = ds[0].OSName
		}
	}
	// d gives the /etc the new deployment merges and the apt sources;
	// od the request and the base it changes: on a booted node, the
	// pending deployment if there is one (staged too), so that two
	// changes before a reboot add up (rpm-ostree's origin merge
	// deployment).
	d, ok := s.MergeDeployment(osname)
	if !ok {
		return fmt.Errorf("no deployment of stateroot %q to layer packages on: %w", osname, errdefs.ErrNotFound)
	}
	od := d
	if p, ok := s.Pending(); ok && p.OSName == d.OSName {
		od = p
	}
	l := sysroot.LayeringOf(od.Origin)
	if err := edit(&l, d.OSName); err != nil {
		return err
	}
	base, err := s.BaseCommit(od)
	if err != nil {
		return err
	}
	origin, err := sysroot.LayeredOrigin(sysroot.UpgradeOrigin(od), l)
	if err != nil {
		return err
	}
	var log io.Writer
	if f.verbose {
		log = cmd.ErrOrStderr()
	}
	commit, res, err := deriveLayer(cmd.Context(), s, d, base, l, log)
	if err != nil {
		return err
	}
	running, booted := s.Booted()
	if f.applyLive {
		switch {
		case !booted:
			return fmt.Errorf("cannot apply live: no deployment of %s is booted: %w", s.Path(), errdefs.ErrFailedPrecondition)
		case running.OSName != d.OSName:
			return fmt.Errorf("cannot apply live: the booted deployment is of stateroot %s, not %s: %w", running.OSName, d.OSName, errdefs.ErrFailedPrecondition)
		}
	}
	bar := newProgress(cmd, "deploy", -1, false)
	nd, err := s.Deploy(cmd.Context(), d.OSName, commit.String(), sysroot.DeployOptions{Origin: origin, Stage: f.stage, Progress: bar})
	bar.Finish()
	if err != nil {
		return err
	}
	live := 0
	if f.applyLive {
		if live, err = applyLive(cmd.Context(), s, running, nd, f.liveRoot); err != nil {
			return fmt.Errorf("deployed %s.%d, which boots next, but cannot apply it live: %w", nd.Checksum, nd.Serial, err)
		}
	}
	out := layerJSON{Base: base.String(), Commit: commit.String(), Requested: nonNil(l.Requested),
		Local: nonNil(l.RequestedLocal), Removed: nonNil(l.Removed), Deployed: toDeploymentJSON(s, nd), LiveApplied: live}
	if res != nil {
		out.Added, out.BaseRemove, out.Stats = res.Added, res.Removed, &res.Stats
	}
	if f.json {
		return writeJSON(cmd.OutOrStdout(), out)
	}
	w := cmd.OutOrStdout()
	if res != nil {
		fmt.Fprintf(w, "Derived %s from base %s: %d objects written (%d bytes of files), %d files reused.\n",
			commit, base, res.Stats.ContentWritten+res.Stats.MetaWritten, res.Stats.BytesWritten, res.Stats.ContentReused)
		for _, p := range res.Added {
			fmt.Fprintf(w, "  + %s %s\n", p.Name, p.Version)
		}
		for _, p := range res.Removed {
			fmt.Fprintf(w, "  - %s %s\n", p.Name, p.Version)
		}
	} else {
		fmt.Fprintf(w, "Nothing layered: deploying the base %s.\n", base)
	}
	what := "it boots next"
	if nd.Staged {
		what = "staged; it boots next after a reboot"
	}
	fmt.Fprintf(w, "Deployed %s.%d; %s.\n", nd.Checksum, nd.Serial, what)
	if f.applyLive {
		fmt.Fprintf(w, "Applied live: %d paths of /usr in a read-only overlay on the running /usr (until the reboot).\n", live)
	}
	return nil
}

func newInstallCmd() *cobra.Command {
	var f layerFlags
	cmd := &cobra.Command{
		Use:   "install [--sysroot S] [--os NAME] [--stage] [--apply-live] PKG...|./FILE.deb...",
		Short: "Layer packages on the base: derive a commit with them and deploy it",
		Long: `Install Debian packages on top of the base commit, as rpm-ostree install does:
a commit is derived from the base (the base's files reused, only what the
packages add written) by apt and dpkg, and deployed as the next default; the
booted deployment keeps running. PKG comes from the node's apt sources; an
argument that names a file (./x.deb, /path/x.deb) is a local package, kept in
/var/lib/strata/layer and pinned by its checksum. The request is recorded in
the deployment's origin ([packages] requested=, requested-local=), so every
upgrade installs the packages again on the new base (docs/layering.md).

--apply-live also makes the packages usable at once, as rpm-ostree's
apply-live does: what the new deployment adds to /usr (the packages' files,
the dpkg database) is mounted read-only over the running /usr as an overlay
layer, until the reboot. The booted deployment's tree is not changed, no
service is started, /etc gets the packages' configuration at the next boot.`,
		Args: cobra.MinimumNArgs(1),
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			return f.changeLayer(cmd, s, func(l *sysroot.Layering, osname string) error {
				for _, a := range args {
					if strings.Contains(a, "/") || strings.HasSuffix(a, ".deb") {
						d, err := keepDeb(s, osname, a)
						if err != nil {
							return fmt.Errorf("cannot install %s: %w", a, err)
						}
						if slices.ContainsFunc(l.RequestedLocal, func(id string) bool { return strings.HasPrefix(id, d.SHA256+":") }) {
							return fmt.Errorf("cannot install %s: it is layered already: %w", a, errdefs.ErrAlreadyExists)
						}
						l.RequestedLocal = append(l.RequestedLocal, d.ID())
						continue
					}
					if slices.Contains(l.Requested, a) {
						return fmt.Errorf("cannot install %s: it is layered already: %w", a, errdefs.ErrAlreadyExists)
					}
					l.Requested = append(l.Requested, a)
				}
				return nil
			})
		}),
	}
	f.register(cmd)
	cmd.Flags().BoolVarP(&f.applyLive, "apply-live", "A", false, "also make the new packages usable on the running system, without a reboot")
	cmd.Flags().StringVar(&f.liveRoot, "live-root", "/", "root of the running system that --apply-live changes (tests)")
	cmd.Flags().StringVar(&f.procCmdline, "proc-cmdline", "", "read the booted kernel's command line from this file (tests)")
	_ = cmd.Flags().MarkHidden("live-root")
	_ = cmd.Flags().MarkHidden("proc-cmdline")
	return cmd
}

func newUninstallCmd() *cobra.Command {
	var f layerFlags
	cmd := &cobra.Command{
		Use:   "uninstall [--sysroot S] [--os NAME] [--stage] PKG...",
		Short: "Remove layered packages: derive the commit again without them",
		Long: `Remove packages that install layered (by name, or a local package by its
package name): the commit is derived again from the base without them and
deployed; with nothing left layered, the base itself is deployed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: f.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			return f.changeLayer(cmd, s, func(l *sysroot.Layering, _ string) error {
				for _, a := range args {
					n := len(l.Requested) + len(l.RequestedLocal)
					l.Requested = slices.DeleteFunc(l.Requested, func(p string) bool { return p == a })
					l.RequestedLocal = slices.DeleteFunc(l.RequestedLocal, func(id string) bool {
						_, nva, _ := strings.Cut(id, ":")
						return strings.HasPrefix(nva, a+"_")
					})
					if len(l.Requested)+len(l.RequestedLocal) == n {
						return fmt.Errorf("cannot uninstall %s: it is not a layered package: %w", a, errdefs.ErrNotFound)
					}
				}
				return nil
			})
		}),
	}
	f.register(cmd)
	return cmd
}

func newOverrideCmd() *cobra.Command {
	var rf, sf layerFlags
	remove := &cobra.Command{
		Use:   "remove [--sysroot S] [--os NAME] [--stage] PKG...",
		Short: "Remove packages of the base from the deployment (dpkg --purge)",
		Long: `Remove base packages from a derived commit ([overrides] remove= in the
origin): dpkg purges them, and fails, naming them, when another package
depends on them. Every upgrade removes them again from the new base.`,
		Args: cobra.MinimumNArgs(1),
		RunE: rf.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			return rf.changeLayer(cmd, s, func(l *sysroot.Layering, _ string) error {
				for _, a := range args {
					if slices.Contains(l.Removed, a) {
						return fmt.Errorf("cannot remove %s: it is removed already: %w", a, errdefs.ErrAlreadyExists)
					}
					l.Removed = append(l.Removed, a)
				}
				return nil
			})
		}),
	}
	rf.register(remove)
	reset := &cobra.Command{
		Use:   "reset [--sysroot S] [--os NAME] [--stage] [PKG...]",
		Short: "Put removed base packages back (all of them without arguments)",
		RunE: sf.run(func(cmd *cobra.Command, s *sysroot.Sysroot, args []string) error {
			return sf.changeLayer(cmd, s, func(l *sysroot.Layering, _ string) error {
				if len(args) == 0 {
					l.Removed = nil
					return nil
				}
				for _, a := range args {
					if !slices.Contains(l.Removed, a) {
						return fmt.Errorf("cannot reset %s: it is not removed: %w", a, errdefs.ErrNotFound)
					}
					l.Removed = slices.DeleteFunc(l.Removed, func(p string) bool { return p == a })
				}
				return nil
			})
		}),
	}
	sf.register(reset)
	return newGroup("override", "Override packages of the base: remove them, or put them back", remove, reset)
}
