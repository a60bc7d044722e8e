package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysext"
	"github.com/strata-os/strata/internal/sysroot"
)

// sysextTarget is the deployment the extension commands act for: the
// booted one, else the default (index 0).
func sysextTarget(s *sysroot.Sysroot) (sysroot.Deployment, error) {
	if b, ok := s.Booted(); ok {
		return b, nil
	}
	ds := s.Deployments()
	if len(ds) == 0 {
		return sysroot.Deployment{}, fmt.Errorf("sysroot %s has no deployment: %w", s.Path(), errdefs.ErrNotFound)
	}
	for _, d := range ds {
		if !d.Staged {
			return d, nil
		}
	}
	return ds[0], nil
}

// sysextStore is the extension store of a stateroot: its /var in the
// sysroot (the same directory as /var on the booted node).
func sysextStore(s *sysroot.Sysroot, osname string) sysext.Store {
	return sysext.Store{Var: filepath.Join(absPath(s.Path()), "ostree/deploy", osname, "var")}
}

// deploymentOSRelease reads a deployment's usr/lib/os-release, resolved
// inside the deployment (os.Root): the OS an extension must match.
func deploymentOSRelease(s *sysroot.Sysroot, d sysroot.Deployment) (osrelease.Values, error) {
	root, err := os.OpenRoot(filepath.Join(s.Path(), d.Path()))
	if err != nil {
		return nil, fmt.Errorf("reading the os-release of deployment %s: %w", d.Name(), err)
	}
	defer root.Close()
	f, err := root.Open("usr/lib/os-release")
	if err != nil {
		return nil, fmt.Errorf("reading the os-release of deployment %s: %w", d.Name(), err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, osrelease.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the os-release of deployment %s: %w", d.Name(), err)
	}
	return osrelease.Parse(data)
}

// commitOSRelease reads /usr/lib/os-release from a commit in r (the
// os-release of an OS before it is deployed).
func commitOSRelease(r *repo.Repo, c ostree.Checksum) (osrelease.Values, error) {
	e, err := repo.Lookup(r, c, "/usr/lib/os-release")
	if err != nil {
		return nil, fmt.Errorf("reading the os-release of commit %s: %w", c, err)
	}
	if e.Kind != repo.EntryFile {
		return nil, fmt.Errorf("reading the os-release of commit %s: not a file: %w", c, errdefs.ErrInvalid)
	}
	content, err := r.OpenContent(e.Checksum)
	if err != nil {
		return nil, fmt.Errorf("reading the os-release of commit %s: %w", c, err)
	}
	defer content.Close()
	data, err := io.ReadAll(io.LimitReader(content, osrelease.MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading the os-release of commit %s: %w", c, err)
	}
	v, err := osrelease.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("reading the os-release of commit %s: %w", c, err)
	}
	return v, nil
}

// sysextPreparer is the sysroot.Preparer of followed extensions: before
// an upgrade stages target, it fetches, for every extension the node
// follows, the image published for target's VERSION_ID next to the
// origin's remote, verified with the remote's keys (docs/sysext.md,
// "Extensions that follow upgrades"). The new deployment then finds it at
// boot and the deployments already there keep theirs. When none is
// published for that version the upgrade goes on and says so: the new
// deployment boots without it, and `strata sysext list` says why. A
// signature, image or version that does not verify stops the upgrade
// before anything is staged. Images of versions no deployment (nor
// target) runs are pruned. The commit is returned unchanged.
func sysextPreparer(cmd *cobra.Command) sysroot.Preparer {
	return func(ctx context.Context, s *sysroot.Sysroot, base sysroot.Deployment, target ostree.Checksum) (ostree.Checksum, error) {
		store := sysextStore(s, base.OSName)
		names, err := store.Followed()
		if err != nil || len(names) == 0 {
			return target, err
		}
		host, err := commitOSRelease(s.Repo(), target)
		if err != nil {
			return target, fmt.Errorf("extensions: %w", err)
		}
		remote, _, err := ostree.ParseRefspec(base.Refspec)
		if err != nil || remote == "" {
			fmt.Fprintf(cmd.ErrOrStderr(), "Extensions %v: the origin %s has no remote to fetch them from; the new deployment boots without them\n", names, base.Refspec)
			return target, nil
		}
		policy, err := pull.PolicyFromRemote(s.Repo(), remote, nil, false)
		if err != nil {
			return target, fmt.Errorf("extensions: %w", err)
		}
		version := host["VERSION_ID"]
		for _, n := range names {
			res, err := store.Fetch(ctx, n, sysext.FetchOptions{BaseURL: policy.URL, Verifier: policy.Verifier, Target: host, Arch: sysext.Architecture()})
			switch {
			case errors.Is(err, errdefs.ErrNotFound):
				fmt.Fprintf(cmd.ErrOrStderr(), "Extension %s: none published for VERSION_ID %s; the new deployment boots without it\n", n, version)
			case err != nil:
				return target, fmt.Errorf("extension %s: %w", n, err)
			case res.Fetched:
				fmt.Fprintf(cmd.ErrOrStderr(), "Extension %s: fetched the image for VERSION_ID %s\n", n, version)
			}
		}
		keep := map[string]bool{version: true}
		for _, d := range s.Deployments() {
			if v, err := commitOSRelease(s.Repo(), d.Checksum); err == nil {
				keep[v["VERSION_ID"]] = true
			} else {
				return target, nil // keep everything rather than guess
			}
		}
		if err := store.Prune(keep); err != nil {
			return target, fmt.Errorf("extensions: %w", err)
		}
		return target, nil
	}
}

// sysextRefreshFlags are the flags of the commands that change the
// extensions of a running node (add, remove).
type sysextRefreshFlags struct {
	noRefresh bool
	root      string // the running system's root for systemd-sysext --root (tests)
}

func (f *sysextRefreshFlags) register(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.noRefresh, "no-refresh", false, "do not run systemd-sysext refresh: the change takes effect at the next boot")
	cmd.Flags().StringVar(&f.root, "sysext-root", "", "run systemd-sysext refresh --root=DIR on this running system's root (tests)")
	_ = cmd.Flags().MarkHidden("sysext-root")
}

// refresh makes a change of the extensions live, as `systemd-sysext
// refresh` does (unmerge, merge again with the images now in place), when
// the sysroot is the running system's ("/") booted with systemd (it has
// /run/systemd/system, as sd_booted checks) and systemd-sysext is
// installed; else, or with --no-refresh, it says that the change waits
// for the next boot. what is "merged" or "unmerged".
func (f *sysextRefreshFlags) refresh(cmd *cobra.Command, s *sysroot.Sysroot, what string) error {
	w := cmd.OutOrStdout()
	args := []string{"refresh"}
	switch {
	case f.noRefresh:
		fmt.Fprintf(w, "Not refreshed (--no-refresh): %s at the next boot or systemd-sysext refresh\n", what)
		return nil
	case f.root != "":
		args = append(args, "--root="+f.root)
	case filepath.Clean(s.Path()) != "/":
		fmt.Fprintf(w, "The sysroot is not the running system's: %s when it boots\n", what)
		return nil
	default:
		if _, err := os.Stat("/run/systemd/system"); err != nil {
			fmt.Fprintf(w, "The system is not running systemd: %s at the next boot\n", what)
			return nil
		}
	}
	bin, err := exec.LookPath("systemd-sysext")
	if err != nil {
		fmt.Fprintf(w, "No systemd-sysext here (Debian package systemd): %s at the next boot\n", what)
		return nil
	}
	out, err := exec.CommandContext(cmd.Context(), bin, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("systemd-sysext %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	fmt.Fprintf(w, "Refreshed (systemd-sysext refresh): %s now\n", what)
	return nil
}
