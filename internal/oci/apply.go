package oci

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	// carriedDir holds the commit objects in an encapsulated image, as in ostree-ext.
	carriedDir     = "sysroot/ostree"
	carriedObjects = carriedDir + "/repo/objects/"
)

// applier applies layer tar streams to a tree.
type applier struct {
	t *tree
	// derived marks layers after ostree.final-diffid: /var content becomes tmpfiles lines.
	derived bool
	// maxSize bounds the file content of one layer.
	maxSize int64
	// carried are the objects found under sysroot/ostree/repo/objects (base layers).
	carried map[string][]byte
	// tmpfiles are the lines that recreate derived /var content at boot.
	tmpfiles []string
	// lower, when set, is the tree of the layers below: a's tree holds one layer alone,
	// its whiteouts are recorded in whiteouts (for lower) and hardlinks may point into lower.
	lower     *tree
	whiteouts [][2]string // parent, base
	carriedN  int         // objects carried by this layer
	// known, when set, gives the content object a file of the layer is already known to
	// be (a layer made from a commit of the repository): it is not hashed again.
	known func(p string, fi ostree.FileInfo) (ostree.Checksum, bool)
}

// entryPath turns a layer entry's name into a path inside the commit: relative, clean,
// /etc moved to /usr/etc. "" is the root. A name that is absolute, has ".." or is not
// clean is refused.
func entryPath(name string) (string, error) {
	p := strings.TrimPrefix(name, "./")
	p = strings.TrimSuffix(p, "/")
	if p == "" || p == "." {
		return "", nil
	}
	if strings.HasPrefix(p, "/") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") ||
		strings.Contains(p, "/../") || strings.HasSuffix(p, "/..") {
		return "", fmt.Errorf("layer entry %q: absolute or not a clean relative path: %w", name, errdefs.ErrInvalid)
	}
	if p == "etc" || strings.HasPrefix(p, "etc/") {
		p = "usr/" + p
	}
	return p, nil
}

func (a *applier) apply(r io.Reader) error {
	tr := tar.NewReader(r)
	var total int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading layer tar: %w", err)
		}
		if h.Typeflag == tar.TypeReg {
			total += h.Size
			if a.maxSize > 0 && total > a.maxSize {
				return fmt.Errorf("layer content over %d bytes: %w", a.maxSize, errdefs.ErrInvalid)
			}
		}
		if err := a.entry(h, tr); err != nil {
			return err
		}
	}
}

func (a *applier) entry(h *tar.Header, r io.Reader) error {
	p, err := entryPath(h.Name)
	if err != nil {
		return err
	}
	if p == carriedDir || strings.HasPrefix(p, carriedDir+"/") {
		return a.carry(p, h, r)
	}
	parent, base := splitPath(p)
	if strings.HasPrefix(base, whiteoutPrefix) {
		if a.lower != nil {
			a.whiteouts = append(a.whiteouts, [2]string{parent, base})
			return nil
		}
		return whiteout(a.t, a.derived, parent, base)
	}
	if a.derived && (p == "var" || strings.HasPrefix(p, "var/")) {
		return a.varEntry(p, h)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		return a.mkdir(p, h)
	case tar.TypeReg, tar.TypeSymlink:
		return a.file(p, h, r)
	case tar.TypeLink:
		return a.link(p, h)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("layer entry %q: device node or FIFO: %w", h.Name, errdefs.ErrInvalid)
	case tar.TypeXGlobalHeader:
		return nil
	}
	return fmt.Errorf("layer entry %q: unsupported tar type %q: %w", h.Name, h.Typeflag, errdefs.ErrInvalid)
}

// carry keeps the commit and detached metadata objects an encapsulated image carries.
func (a *applier) carry(p string, h *tar.Header, r io.Reader) error {
	if a.derived || h.Typeflag == tar.TypeDir {
		return nil
	}
	rest, ok := strings.CutPrefix(p, carriedObjects)
	if !ok || h.Typeflag != tar.TypeReg {
		return nil
	}
	if h.Size > repo.MaxMetadataSize {
		return fmt.Errorf("carried object %s: over %d bytes: %w", rest, repo.MaxMetadataSize, errdefs.ErrInvalid)
	}
	b, err := io.ReadAll(io.LimitReader(r, h.Size))
	if err != nil {
		return fmt.Errorf("reading carried object %s: %w", rest, err)
	}
	a.carried[strings.ReplaceAll(rest, "/", "")] = b
	a.carriedN++
	return nil
}

// whiteout removes parent/NAME (base is .wh.NAME) from t, or all of parent's entries
// (base is the opaque marker).
func whiteout(t *tree, derived bool, parent, base string) error {
	if derived && (parent == "var" || strings.HasPrefix(parent, "var/")) {
		return nil // /var is the node's; an image cannot remove from it
	}
	d, err := t.dir(parent, false)
	if err != nil {
		return fmt.Errorf("applying whiteout %s/%s: %w", parent, base, err)
	}
	if d == nil {
		return nil
	}
	if base == opaqueWhiteout {
		d.Children = map[string]*node{}
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	if name == "" || name == "." || name == ".." || strings.HasPrefix(name, whiteoutPrefix) {
		return fmt.Errorf("whiteout %s/%s: names no entry: %w", parent, base, errdefs.ErrInvalid)
	}
	delete(d.Children, name)
	return nil
}

func perm(h *tar.Header) uint32 { return uint32(h.Mode) & 0o7777 }

func xattrs(h *tar.Header) []ostree.Xattr {
	var xs []ostree.Xattr
	for k, v := range h.PAXRecords {
		if n, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			xs = append(xs, ostree.Xattr{Name: n, Value: []byte(v)})
		}
	}
	return ostree.CanonicalXattrs(xs)
}

func owner(h *tar.Header) (uint32, uint32, error) {
	if h.Uid < 0 || h.Gid < 0 || h.Uid > 1<<32-1 || h.Gid > 1<<32-1 {
		return 0, 0, fmt.Errorf("layer entry %q: owner %d:%d out of range: %w", h.Name, h.Uid, h.Gid, errdefs.ErrInvalid)
	}
	return uint32(h.Uid), uint32(h.Gid), nil
}

func (a *applier) mkdir(p string, h *tar.Header) error {
	uid, gid, err := owner(h)
	if err != nil {
		return err
	}
	m, err := a.t.dirMeta(ostree.DirMeta{UID: uid, GID: gid, Mode: 0o40000 | perm(h), Xattrs: xattrs(h)})
	if err != nil {
		return err
	}
	if p == "" {
		a.t.Root.Meta = m
		return nil
	}
	parent, base := splitPath(p)
	d, err := a.t.dir(parent, true)
	if err != nil {
		return fmt.Errorf("creating directory %s: %w", p, err)
	}
	if c := d.Children[base]; c != nil && c.Dir {
		c.Meta, c.Implicit = m, false
		return nil
	}
	d.Children[base] = &node{Dir: true, Meta: m, Children: map[string]*node{}}
	return nil
}

func (a *applier) file(p string, h *tar.Header, r io.Reader) error {
	if p == "" {
		return fmt.Errorf("layer entry %q: the root as a file: %w", h.Name, errdefs.ErrInvalid)
	}
	uid, gid, err := owner(h)
	if err != nil {
		return err
	}
	fi := ostree.FileInfo{UID: uid, GID: gid, Mode: 0o100000 | perm(h), Xattrs: xattrs(h)}
	size := h.Size
	if h.Typeflag == tar.TypeSymlink {
		fi.Mode = 0o120000 | perm(h)
		fi.SymlinkTarget = h.Linkname
		r, size = strings.NewReader(""), 0
	}
	if err := fi.Validate(); err != nil {
		return fmt.Errorf("layer entry %q: %w", h.Name, err)
	}
	parent, base := splitPath(p)
	d, err := a.t.dir(parent, true)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if a.known != nil {
		if c, ok := a.known(p, fi); ok {
			d.Children[base] = &node{Content: c}
			return nil
		}
	}
	c, err := a.t.txn.WriteContent(fi, r, size, nil)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	d.Children[base] = &node{Content: c}
	return nil
}

func (a *applier) link(p string, h *tar.Header) error {
	target, err := entryPath(h.Linkname)
	if err != nil {
		return err
	}
	n, err := a.t.lookup(target)
	if err == nil && n == nil && a.lower != nil {
		n, err = a.lower.lookup(target)
	}
	if err != nil {
		return fmt.Errorf("hardlink %s: %w", p, err)
	}
	if n == nil || n.Dir {
		return fmt.Errorf("hardlink %s: target %s is not a file of the layers: %w", p, h.Linkname, errdefs.ErrInvalid)
	}
	parent, base := splitPath(p)
	d, err := a.t.dir(parent, true)
	if err != nil {
		return fmt.Errorf("hardlink %s: %w", p, err)
	}
	d.Children[base] = &node{Content: n.Content}
	return nil
}

// varEntry turns /var content of a derived layer into a tmpfiles.d line, as compose does
// for the base: directories and symlinks are recreated at boot, empty files too, content
// is dropped (a deployment shares the node's /var).
func (a *applier) varEntry(p string, h *tar.Header) error {
	if p == "var" {
		return nil
	}
	if strings.ContainsAny(p, " \t\n\\") {
		return fmt.Errorf("/%s: space or backslash in a /var path: %w", p, errdefs.ErrInvalid)
	}
	switch h.Typeflag {
	case tar.TypeDir:
		a.tmpfiles = append(a.tmpfiles, fmt.Sprintf("d /%s %04o %d %d -", p, perm(h), h.Uid, h.Gid))
	case tar.TypeSymlink:
		if strings.ContainsAny(h.Linkname, "\n") {
			return fmt.Errorf("/%s: newline in a symlink target: %w", p, errdefs.ErrInvalid)
		}
		a.tmpfiles = append(a.tmpfiles, fmt.Sprintf("L /%s - - - - %s", p, h.Linkname))
	case tar.TypeReg:
		if h.Size == 0 {
			a.tmpfiles = append(a.tmpfiles, fmt.Sprintf("f /%s %04o %d %d -", p, perm(h), h.Uid, h.Gid))
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("layer entry %q: device node or FIFO: %w", h.Name, errdefs.ErrInvalid)
	}
	return nil
}
