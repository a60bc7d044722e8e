package sysroot

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
)

// Deployment is one deployment of a sysroot: a checkout of a commit in a
// stateroot, with its boot configuration. Values are snapshots: methods of
// Sysroot that change the sysroot return or reload new ones.
type Deployment struct {
	OSName   string          // stateroot
	Checksum ostree.Checksum // commit checked out
	Serial   int             // deploy serial: the N of CHECKSUM.N

	// BootChecksum names the kernel+initramfs (docs/formats/sysroot.md);
	// BootSerial counts deployments sharing it, in list order.
	BootChecksum string
	BootSerial   int

	Index int // position in the deployment list; 0 is the default

	Refspec string // [origin] refspec (or baserefspec, or container-image-reference) of the origin file
	// ImageDigest is the manifest digest of the image the deployment was
	// imported from, when its origin is an image reference.
	ImageDigest string
	Origin      *keyfile.File // the whole origin file; nil if it has none

	// Kargs are the kernel arguments of the BLS entry without ostree=,
	// which the sysroot sets.
	Kargs []string

	Version   string    // the commit's version metadata, if any
	Timestamp time.Time // the commit's timestamp (zero if the commit is unreadable)

	Pinned bool // [libostree-transient] pinned=true in the origin
	Booted bool // the running system booted this deployment
	Staged bool // waiting for Finalize; not in the boot configuration yet

	// ostreePos is where ostree= stands among the arguments of the BLS
	// options (-1: at the end), so that a rewritten entry keeps it there
	// as libostree does when it replaces ostree= in place.
	ostreePos int
}

// Path returns the deployment directory relative to the sysroot:
// ostree/deploy/OSNAME/deploy/CHECKSUM.SERIAL.
func (d Deployment) Path() string {
	return "ostree/deploy/" + d.OSName + "/deploy/" + d.Name()
}

// Name returns CHECKSUM.SERIAL.
func (d Deployment) Name() string { return d.Checksum.String() + "." + strconv.Itoa(d.Serial) }

// OriginPath returns the origin file relative to the sysroot.
func (d Deployment) OriginPath() string { return d.Path() + ".origin" }

// ID returns OSNAME-CHECKSUM.SERIAL, the id rpm-ostree shows.
func (d Deployment) ID() string { return d.OSName + "-" + d.Name() }

// same reports whether a and b are the same deployment directory.
func (d Deployment) same(o Deployment) bool {
	return d.OSName == o.OSName && d.Checksum == o.Checksum && d.Serial == o.Serial
}

// options builds the BLS options with a bare "ostree" word where ostree=
// goes; the writer replaces it.
func (d Deployment) optionWords() []string {
	w := slices.Clone(d.Kargs)
	if d.ostreePos >= 0 && d.ostreePos <= len(w) {
		return slices.Insert(w, d.ostreePos, "ostree")
	}
	return append(w, "ostree")
}

var deployNameRE = regexp.MustCompile(`^([0-9a-f]+)\.([0-9]+)$`)

// parseDeployName parses CHECKSUM.SERIAL (_ostree_sysroot_parse_deploy_path_name).
func parseDeployName(name string) (ostree.Checksum, int, error) {
	m := deployNameRE.FindStringSubmatch(name)
	if m == nil {
		return ostree.Checksum{}, 0, fmt.Errorf("deployment name %q, expected CHECKSUM.SERIAL: %w", name, errdefs.ErrCorrupt)
	}
	c, err := ostree.ParseChecksum(m[1])
	if err != nil {
		return c, 0, fmt.Errorf("deployment name %q: %w", name, errdefs.ErrCorrupt)
	}
	n, err := strconv.Atoi(m[2])
	if err != nil {
		return c, 0, fmt.Errorf("deployment name %q: %w", name, errdefs.ErrCorrupt)
	}
	return c, n, nil
}

var bootLinkRE = regexp.MustCompile(`^/ostree/boot\.([01])/([^/]+)/([^/]+)/([0-9]+)$`)

// bootLink is a parsed ostree= argument.
type bootLink struct {
	bootversion int
	osname      string
	bootcsum    string
	bootserial  int
}

func parseBootLink(s string) (bootLink, error) {
	m := bootLinkRE.FindStringSubmatch(s)
	if m == nil {
		return bootLink{}, fmt.Errorf("ostree=%s, expected ostree=/ostree/boot.BOOTVERSION/OSNAME/BOOTCSUM/SERIAL: %w", s, errdefs.ErrCorrupt)
	}
	bv, _ := strconv.Atoi(m[1])
	bs, err := strconv.Atoi(m[4])
	if err != nil {
		return bootLink{}, fmt.Errorf("ostree=%s: %w", s, errdefs.ErrCorrupt)
	}
	return bootLink{bv, m[2], m[3], bs}, nil
}

// Origin groups and keys libostree and rpm-ostree use (docs/formats/sysroot.md).
const (
	originGroup    = "origin"
	transientGroup = "libostree-transient"
	// imageGroup holds what strata knows of an image origin beyond the
	// reference: the manifest digest deployed (ostree and rpm-ostree
	// ignore groups they do not know).
	imageGroup = "strata-image"
)

// NewOrigin returns the origin of a deployment of refspec, as
// ostree_sysroot_origin_new_from_refspec writes it: "[origin]\nrefspec=R\n".
// A container image reference is written as rpm-ostree and bootc write
// it, "[origin]\ncontainer-image-reference=R\n" (see NewImageOrigin).
func NewOrigin(refspec string) *keyfile.File {
	f, _ := keyfile.Parse(nil)
	if IsImageReference(refspec) {
		f.Set(originGroup, "container-image-reference", refspec)
		return f
	}
	f.Set(originGroup, "refspec", refspec)
	return f
}

// NewImageOrigin returns the origin of a deployment of the image imgref
// (ostree-unverified-registry:HOST/NAME:TAG or a signed form) whose
// manifest digest was digest.
func NewImageOrigin(imgref, digest string) *keyfile.File {
	f, _ := keyfile.Parse(nil)
	f.Set(originGroup, "container-image-reference", imgref)
	if digest != "" {
		f.Set(imageGroup, "manifest-digest", digest)
	}
	return f
}

func originImageDigest(f *keyfile.File) string {
	if f == nil {
		return ""
	}
	v, _ := f.Get(imageGroup, "manifest-digest")
	return v
}

func originRefspec(f *keyfile.File) string {
	if f == nil {
		return ""
	}
	if v, ok := f.Get(originGroup, "refspec"); ok {
		return v
	}
	if v, ok := f.Get(originGroup, "baserefspec"); ok {
		return v
	}
	v, _ := f.Get(originGroup, "container-image-reference")
	return v
}

func originPinned(f *keyfile.File) bool {
	if f == nil {
		return false
	}
	v, _ := f.GetBool(transientGroup, "pinned", false)
	return v
}

// cloneOrigin copies an origin file.
func cloneOrigin(f *keyfile.File) *keyfile.File {
	if f == nil {
		return nil
	}
	c, _ := keyfile.Parse(f.Bytes())
	return c
}

// cmdlineOstree returns the value of the first ostree= word of a kernel
// command line.
func cmdlineOstree(cmdline string) (string, bool) {
	for _, w := range strings.Fields(cmdline) {
		if v, ok := strings.CutPrefix(w, "ostree="); ok {
			return v, true
		}
	}
	return "", false
}
