package sysroot

import (
	"fmt"
	"slices"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
)

// Layering is what a node asked to change on top of its base commit, as
// rpm-ostree records it in a deployment's origin (docs/layering.md):
//
//	[origin]
//	baserefspec=REMOTE:REF
//	[packages]
//	requested=tcpdump;strace;
//	requested-local=SHA256:hello_1.0_amd64;
//	[overrides]
//	remove=nano;
//
// A deployment whose origin has any of these runs a commit derived from
// the base (the derived commit's parent); every upgrade derives it again
// on the new base.
type Layering struct {
	// Requested are packages installed from the node's apt sources by
	// name; a newer base installs their newest version again.
	Requested []string
	// RequestedLocal are local .deb files, each as SHA256:NAME_VERSION_ARCH:
	// pinned to that exact file, kept in the stateroot's /var.
	RequestedLocal []string
	// Removed are packages of the base removed from the derived commit.
	Removed []string
}

// Origin groups of a layered deployment (rpm-ostree's names).
const (
	packagesGroup  = "packages"
	overridesGroup = "overrides"
)

// Empty says whether the layering changes nothing.
func (l Layering) Empty() bool {
	return len(l.Requested) == 0 && len(l.RequestedLocal) == 0 && len(l.Removed) == 0
}

// LayeringOf reads the layering of an origin file.
func LayeringOf(f *keyfile.File) Layering {
	if f == nil {
		return Layering{}
	}
	get := func(group, key string) []string {
		v, _ := f.Get(group, key)
		return splitList(v)
	}
	return Layering{
		Requested:      get(packagesGroup, "requested"),
		RequestedLocal: get(packagesGroup, "requested-local"),
		Removed:        get(overridesGroup, "remove"),
	}
}

// LayeredOrigin returns a copy of the origin f with l recorded: with
// anything layered the refspec is written as baserefspec (the deployment
// is derived from it), else as refspec, as rpm-ostree does. Names with a
// ';', a control character or a space are refused: they cannot be
// written to a list of the origin.
func LayeredOrigin(f *keyfile.File, l Layering) (*keyfile.File, error) {
	for _, list := range [][]string{l.Requested, l.RequestedLocal, l.Removed} {
		for _, n := range list {
			if n == "" || strings.ContainsAny(n, "; \t\\") || hasControl(n) {
				return nil, fmt.Errorf("recording %q in the origin: not a package name: %w", n, errdefs.ErrInvalid)
			}
		}
	}
	out := cloneOrigin(f)
	if out == nil {
		out = NewOrigin("")
	}
	refspec := originRefspec(out)
	out.Delete(originGroup, "refspec")
	out.Delete(originGroup, "baserefspec")
	if l.Empty() {
		out.Set(originGroup, "refspec", refspec)
	} else {
		out.Set(originGroup, "baserefspec", refspec)
	}
	set := func(group, key string, v []string) {
		if len(v) == 0 {
			out.Delete(group, key)
			return
		}
		out.Set(group, key, joinList(v))
	}
	set(packagesGroup, "requested", l.Requested)
	set(packagesGroup, "requested-local", l.RequestedLocal)
	set(overridesGroup, "remove", l.Removed)
	return compactOrigin(out, ""), nil
}

// compactOrigin copies f without group drop and without groups left
// empty.
func compactOrigin(f *keyfile.File, drop string) *keyfile.File {
	out, _ := keyfile.Parse(nil)
	for _, g := range f.Groups() {
		if g == drop {
			continue
		}
		for _, k := range f.Keys(g) {
			v, _ := f.Get(g, k)
			out.Set(g, k, v)
		}
	}
	return out
}

// UpgradeOrigin is the origin a deployment made by an upgrade of d gets:
// d's, with what only held for d dropped ([libostree-transient], and
// override-commit, which pinned d's base), so that layered packages,
// removals and whatever else the node recorded follow the upgrade.
func UpgradeOrigin(d Deployment) *keyfile.File {
	if d.Origin == nil {
		return NewOrigin(d.Refspec)
	}
	f := compactOrigin(d.Origin, transientGroup)
	f.Delete(originGroup, "override-commit")
	return f
}

// BaseCommit returns the base commit of d: for a deployment of a derived
// commit (its origin has baserefspec), the derived commit's parent, as
// rpm-ostree's base-checksum; else d's own commit.
func (s *Sysroot) BaseCommit(d Deployment) (ostree.Checksum, error) {
	if d.Origin == nil {
		return d.Checksum, nil
	}
	if _, ok := d.Origin.Get(originGroup, "baserefspec"); !ok {
		return d.Checksum, nil
	}
	c, err := s.repo.ReadCommit(d.Checksum)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("reading the base of %s: %w", d.Path(), err)
	}
	if c.Parent.IsZero() {
		return ostree.Checksum{}, fmt.Errorf("commit %s of %s has no parent, but its origin names a base: %w", d.Checksum, d.Path(), errdefs.ErrCorrupt)
	}
	return c.Parent, nil
}

// splitList reads a GKeyFile string list ("a;b;").
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ";") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// joinList writes a GKeyFile string list, sorted and without duplicates.
func joinList(v []string) string {
	s := slices.Clone(v)
	slices.Sort(s)
	return strings.Join(slices.Compact(s), ";") + ";"
}
