package sysroot

import (
	"strings"

	"github.com/strata-os/strata/internal/ostree"
)

// OriginKind says what a deployment's origin follows, and so what an
// upgrade of it can do.
type OriginKind string

const (
	// OriginRemote follows REMOTE:REF: an upgrade fetches it.
	OriginRemote OriginKind = "remote"
	// OriginLocalRef follows a ref of the sysroot repository that no
	// remote feeds: an upgrade fetches nothing and deploys where the ref
	// points now.
	OriginLocalRef OriginKind = "local-ref"
	// OriginCommit is pinned to one commit: there is nothing to follow.
	OriginCommit OriginKind = "commit"
	// OriginImage follows a container image reference
	// (container-image-reference=, as rpm-ostree and bootc record it):
	// an upgrade reads the tag's manifest and imports what changed.
	OriginImage OriginKind = "image"
)

// imageTransports are the prefixes of the container image references an
// origin records, as ostree-ext spells them (docs/oci.md, "Nodes that
// follow a registry").
var imageTransports = []string{
	"ostree-unverified-registry:",
	"ostree-unverified-image:",
	"ostree-image-signed:",
	"ostree-remote-registry:",
	"ostree-remote-image:",
}

// IsImageReference says whether an origin refspec is a container image
// reference (ostree-unverified-registry:HOST/NAME:TAG and its kin).
func IsImageReference(refspec string) bool {
	for _, p := range imageTransports {
		if strings.HasPrefix(refspec, p) {
			return true
		}
	}
	return false
}

// KindOf classifies an origin refspec.
func KindOf(refspec string) OriginKind {
	if IsImageReference(refspec) {
		return OriginImage
	}
	if refspec == "" || ostree.IsChecksum(refspec) {
		return OriginCommit
	}
	if remote, _, err := ostree.ParseRefspec(refspec); err == nil && remote != "" {
		return OriginRemote
	}
	return OriginLocalRef
}

// DeployRefspec returns the refspec the origin of a deployment of rev
// (which resolved to csum) records, so that an upgrade keeps following
// where the commit came from (docs/upgrade.md, "What the origin
// follows"):
//
//   - REMOTE:REF, and REMOTE/REF naming refs/remotes/REMOTE/REF, record
//     REMOTE:REF;
//   - a local ref records REMOTE:REF instead when exactly one remote has
//     a ref of that name at the same commit (the commit came from that
//     remote: `repo pull --url` writes both refs), else the local ref;
//   - a checksum, a checksum prefix or REV^ records the full checksum.
func (s *Sysroot) DeployRefspec(rev string, csum ostree.Checksum) string {
	if ostree.IsChecksum(rev) {
		return csum.String()
	}
	remote, name, err := ostree.ParseRefspec(rev)
	if err != nil {
		return csum.String()
	}
	if remote != "" {
		return rev
	}
	if c, err := s.repo.ReadRef("", name); err == nil && c == csum {
		if r, ok := s.trackingRemote(name, csum); ok {
			return r + ":" + name
		}
		return name
	}
	if r, ref, ok := strings.Cut(name, "/"); ok {
		if c, err := s.repo.ReadRef(r, ref); err == nil && c == csum {
			return r + ":" + ref
		}
	}
	return csum.String()
}

// trackingRemote returns the one configured remote whose ref name points
// at csum.
func (s *Sysroot) trackingRemote(name string, csum ostree.Checksum) (string, bool) {
	remotes, err := s.repo.ListRemotes()
	if err != nil {
		return "", false
	}
	var found []string
	for _, rm := range remotes {
		if c, err := s.repo.ReadRef(rm.Name, name); err == nil && c == csum {
			found = append(found, rm.Name)
		}
	}
	if len(found) != 1 {
		return "", false
	}
	return found[0], true
}
