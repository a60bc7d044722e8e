package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/sysroot"
)

// Where a stateroot keeps what layering needs between upgrades, relative
// to its /var (ostree/deploy/OS/var in the sysroot, /var on the node):
// the local .deb files the origin pins by checksum, the record of an
// upgrade that layering blocked, and apt's lists and downloads
// (docs/layering.md).
const (
	layerDebDir  = "lib/strata/layer/debs"
	layerBlocked = "lib/strata/layer/blocked.json"
	layerCache   = "cache/strata/layer"
	// maxLocalDeb bounds a local .deb kept in /var (and read whole to
	// keep it).
	maxLocalDeb = 1 << 30
)

func stateVar(s *sysroot.Sysroot, osname, p string) string {
	return filepath.Join(s.Path(), "ostree/deploy", osname, "var", p)
}

// layerBlock is the record of an upgrade refused because the layered
// packages could not be installed on the new base.
type layerBlock struct {
	Base     string    `json:"base"`              // the new base commit
	Version  string    `json:"version,omitempty"` // its version
	Packages []string  `json:"packages"`          // what the node layers
	Reason   string    `json:"reason"`            // apt's or dpkg's words
	Time     time.Time `json:"time"`
}

// readLayerBlock returns the stateroot's record of a blocked upgrade, if any.
func readLayerBlock(s *sysroot.Sysroot, osname string) *layerBlock {
	b, err := os.ReadFile(stateVar(s, osname, layerBlocked))
	if err != nil {
		return nil
	}
	var lb layerBlock
	if json.Unmarshal(b, &lb) != nil {
		return nil
	}
	return &lb
}

func writeLayerBlock(s *sysroot.Sysroot, osname string, lb *layerBlock) error {
	p := stateVar(s, osname, layerBlocked)
	if lb == nil {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	b, err := json.MarshalIndent(lb, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(p, append(b, '\n'), 0o644)
}

// nodeAptSources are the apt sources of deployment d's /etc: the node's
// configuration, which starts as the base's and which the admin may
// extend. nil when it has none (the base tree's own are used).
func nodeAptSources(s *sysroot.Sysroot, d sysroot.Deployment) map[string][]byte {
	etc := filepath.Join(s.Path(), d.Path(), "etc/apt")
	out := map[string][]byte{}
	if b, err := os.ReadFile(filepath.Join(etc, "sources.list")); err == nil {
		out["node-sources.list"] = b
	}
	ents, _ := os.ReadDir(filepath.Join(etc, "sources.list.d"))
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !(strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources")) {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(etc, "sources.list.d", n)); err == nil {
			out[n] = b
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// keepDeb checks a local .deb and copies it into the stateroot's /var,
// named by its checksum, so that every upgrade can install it again.
func keepDeb(s *sysroot.Sysroot, osname, path string) (compose.LocalDeb, error) {
	d, err := compose.CheckDeb(path)
	if err != nil {
		return d, err
	}
	dst := stateVar(s, osname, filepath.Join(layerDebDir, d.SHA256+".deb"))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return d, err
	}
	if st, err := os.Stat(path); err != nil {
		return d, err
	} else if st.Size() > maxLocalDeb {
		return d, fmt.Errorf("%s: %d bytes, over the %d a local package may have: %w", path, st.Size(), int64(maxLocalDeb), errdefs.ErrInvalid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return d, err
	}
	if err := fsutil.WriteFileAtomic(dst, b, 0o644); err != nil {
		return d, fmt.Errorf("keeping %s: %w", path, err)
	}
	d.Path = dst
	return d, nil
}

// keptDeb finds the kept .deb an origin's requested-local entry
// (SHA256:NAME_VERSION_ARCH) names, and checks that it is still that file.
func keptDeb(s *sysroot.Sysroot, osname, id string) (compose.LocalDeb, error) {
	sum, _, _ := strings.Cut(id, ":")
	if _, err := ostree.ParseChecksum(sum); err != nil {
		return compose.LocalDeb{}, fmt.Errorf("origin entry %q: %w", id, errdefs.ErrCorrupt)
	}
	d, err := compose.CheckDeb(stateVar(s, osname, filepath.Join(layerDebDir, sum+".deb")))
	if err != nil {
		return d, fmt.Errorf("local package %s: %w", id, err)
	}
	if d.ID() != id {
		return d, fmt.Errorf("local package %s: the kept file is %s: %w", id, d.ID(), errdefs.ErrCorrupt)
	}
	return d, nil
}

// deriveLayer derives from base the commit that layering l asks for, with
// d's apt sources; an empty l is base itself.
func deriveLayer(ctx context.Context, s *sysroot.Sysroot, d sysroot.Deployment, base ostree.Checksum, l sysroot.Layering, log io.Writer) (ostree.Checksum, *compose.DeriveResult, error) {
	if l.Empty() {
		return base, nil, nil
	}
	q := compose.DeriveRequest{Install: l.Requested, Remove: l.Removed}
	for _, id := range l.RequestedLocal {
		ld, err := keptDeb(s, d.OSName, id)
		if err != nil {
			return base, nil, err
		}
		q.Local = append(q.Local, ld)
	}
	res, err := compose.Derive(ctx, s.Repo(), base, q, compose.DeriveOptions{SourceFiles: nodeAptSources(s, d),
		CacheDir: stateVar(s, d.OSName, layerCache), Log: log, KeepBaseCheckout: true})
	if err != nil {
		return base, nil, err
	}
	// The deployment of the derived commit takes the base's directories
	// that the packages did not change from the derivation's checkout.
	return res.Commit, res, s.OfferCheckout(base, res.BaseCheckout)
}

// layerPreparer derives the layer of the deployment an upgrade starts
// from on the new base (sysroot.Preparer). When the packages cannot be
// installed there it fails, naming them and apt's or dpkg's reason, and
// records the block for status and the agent; a success clears it.
func layerPreparer(cmd *cobra.Command) sysroot.Preparer {
	return func(ctx context.Context, s *sysroot.Sysroot, base sysroot.Deployment, target ostree.Checksum) (ostree.Checksum, error) {
		l := sysroot.LayeringOf(base.Origin)
		if l.Empty() {
			return target, nil
		}
		var log io.Writer
		if verbose, _ := cmd.Flags().GetBool("verbose"); verbose {
			log = cmd.ErrOrStderr()
		}
		c, _, err := deriveLayer(ctx, s, base, target, l, log)
		if err != nil {
			pkgs := layerNames(l)
			lb := &layerBlock{Base: target.String(), Packages: pkgs, Reason: err.Error(), Time: time.Now().UTC()}
			if bc, rerr := s.Repo().ReadCommit(target); rerr == nil {
				lb.Version = bc.Version()
			}
			return target, errors.Join(fmt.Errorf("updates blocked: the layered packages (%s) cannot be applied to the new base: %w",
				strings.Join(pkgs, ", "), err), writeLayerBlock(s, base.OSName, lb))
		}
		return c, writeLayerBlock(s, base.OSName, nil)
	}
}

// keepLayer makes a deploy or rebase of osname to commit base keep the
// layered packages and removals of the stateroot's merge deployment, as
// rpm-ostree's deploy and rebase do: the layer is derived again on base,
// with that deployment's apt sources and kept .deb files, before anything
// is deployed, and opts.Origin becomes origin (the plain origin the
// deployment would get) with the layering recorded. It returns the commit
// to deploy: base itself when nothing is layered. When the packages
// cannot be installed on base, it fails naming them and apt's or dpkg's
// reason, and nothing is deployed.
func keepLayer(cmd *cobra.Command, s *sysroot.Sysroot, osname string, base ostree.Checksum, origin *keyfile.File, opts *sysroot.DeployOptions) (ostree.Checksum, error) {
	m, ok := s.MergeDeployment(osname)
	if !ok {
		return base, nil
	}
	l := sysroot.LayeringOf(m.Origin)
	if l.Empty() {
		return base, nil
	}
	lo, err := sysroot.LayeredOrigin(origin, l)
	if err != nil {
		return base, err
	}
	var log io.Writer
	if verbose, _ := cmd.Flags().GetBool("verbose"); verbose {
		log = cmd.ErrOrStderr()
	}
	c, _, err := deriveLayer(cmd.Context(), s, m, base, l, log)
	if err != nil {
		return base, fmt.Errorf("the layered packages (%s) cannot be applied to %s: %w", strings.Join(layerNames(l), ", "), base, err)
	}
	opts.Origin = lo
	return c, nil
}

// layerNames lists what l layers, removals as -NAME.
func layerNames(l sysroot.Layering) []string {
	pkgs := slices.Concat(l.Requested, l.RequestedLocal)
	for _, r := range l.Removed {
		pkgs = append(pkgs, "-"+r)
	}
	return pkgs
}

// deployKeepingLayer deploys rev in osname as `strata deploy` and
// `strata rebase` do (opts.Refspec, or what rev names, as the origin),
// with the layer of the stateroot's merge deployment derived again on it
// (keepLayer). A commit that is itself derived (a layered deployment's)
// is deployed as it is.
func deployKeepingLayer(cmd *cobra.Command, s *sysroot.Sysroot, osname, rev string, opts sysroot.DeployOptions) (sysroot.Deployment, error) {
	csum, err := s.Repo().ResolveRev(rev)
	if err != nil {
		return s.Deploy(cmd.Context(), osname, rev, opts) // its error, as without a layer
	}
	if c, err := s.Repo().ReadCommit(csum); err == nil {
		if _, derived := c.Metadata.Get(compose.MetaLayerRequested); derived {
			return s.Deploy(cmd.Context(), osname, rev, opts)
		}
	}
	refspec := opts.Refspec
	if refspec == "" {
		refspec = s.DeployRefspec(rev, csum)
	}
	commit, err := keepLayer(cmd, s, osname, csum, sysroot.NewOrigin(refspec), &opts)
	if err != nil {
		return sysroot.Deployment{}, err
	}
	if commit == csum {
		return s.Deploy(cmd.Context(), osname, rev, opts)
	}
	return s.Deploy(cmd.Context(), osname, commit.String(), opts)
}
