//go:build peer && root

package interop

import (
	"bytes"
	"compress/flate"
	"encoding/binary"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// objectPath is the loose path of an object in a repository directory.
func objectPath(repo string, c ostree.Checksum, t ostree.ObjectType, archive bool) string {
	return filepath.Join(repo, "objects", ostree.LoosePath(c, t, archive))
}

// reachable lists the objects (as "CHECKSUM.type") that a commit needs, reading the loose object
// files directly: the commit, every dirtree and dirmeta, every content object.
func reachable(repo string, commit ostree.Checksum, archive bool) (map[string]ostree.ObjectName, error) {
	out := map[string]ostree.ObjectName{}
	add := func(c ostree.Checksum, t ostree.ObjectType) bool {
		n := ostree.ObjectName{Checksum: c, Type: t}
		if _, ok := out[n.String()]; ok {
			return false
		}
		out[n.String()] = n
		return true
	}
	b, err := os.ReadFile(objectPath(repo, commit, ostree.ObjectCommit, archive))
	if err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", commit, err)
	}
	c, err := ostree.ParseCommit(b)
	if err != nil {
		return nil, fmt.Errorf("parsing commit %s: %w", commit, err)
	}
	add(commit, ostree.ObjectCommit)
	add(c.RootMeta, ostree.ObjectDirMeta)
	var walk func(tree ostree.Checksum) error
	walk = func(tree ostree.Checksum) error {
		if !add(tree, ostree.ObjectDirTree) {
			return nil
		}
		b, err := os.ReadFile(objectPath(repo, tree, ostree.ObjectDirTree, archive))
		if err != nil {
			return fmt.Errorf("reading dirtree %s: %w", tree, err)
		}
		dt, err := ostree.ParseDirTree(b)
		if err != nil {
			return fmt.Errorf("parsing dirtree %s: %w", tree, err)
		}
		for _, f := range dt.Files {
			add(f.Checksum, ostree.ObjectFile)
		}
		for _, d := range dt.Dirs {
			add(d.Meta, ostree.ObjectDirMeta)
			if err := walk(d.Tree); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(c.RootTree); err != nil {
		return nil, err
	}
	return out, nil
}

// readCommit parses a commit object of a repository directory.
func readCommit(repo string, commit ostree.Checksum) (*ostree.Commit, error) {
	b, err := os.ReadFile(objectPath(repo, commit, ostree.ObjectCommit, false))
	if err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", commit, err)
	}
	return ostree.ParseCommit(b)
}

// compareObject compares an object as stored by strata (got) with the same object as stored by
// ostree (want) in a repository of mode. Metadata objects must be byte-identical. Content objects
// must have identical headers and payloads; archive .filez files are compared after inflating
// their payloads, because Go's deflate and zlib produce different (equally valid) streams. In
// bare modes the object file's type, mode, owner, xattrs and (regular files) mtime must match
// too, and so must symlink targets.
func compareObject(mode, got, want string, t ostree.ObjectType) error {
	if t == ostree.ObjectFile && mode != "archive" {
		gm, err := fileMeta(got)
		if err != nil {
			return err
		}
		wm, err := fileMeta(want)
		if err != nil {
			return fmt.Errorf("ostree's object: %w", err)
		}
		if gm != wm {
			return fmt.Errorf("object file = %s, want %s", gm, wm)
		}
		if strings.HasPrefix(gm, "symlink") {
			return nil
		}
	}
	g, err := os.ReadFile(got)
	if err != nil {
		return err
	}
	w, err := os.ReadFile(want)
	if err != nil {
		return fmt.Errorf("ostree's object: %w", err)
	}
	if t == ostree.ObjectFile && mode == "archive" {
		return compareFilez(g, w)
	}
	if !bytes.Equal(g, w) {
		return fmt.Errorf("bytes differ: %d bytes %s, want %d bytes %s", len(g), abbrev(g), len(w), abbrev(w))
	}
	return nil
}

// fileMeta describes a stored object file without following symlinks: type, mode, owner, xattrs,
// and the mtime of regular files or the target of symlinks. (Symlink mtimes are not reset by
// libostree, docs/formats/repository.md.)
func fileMeta(p string) (string, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return "", err
	}
	xs, err := readXattrs(p)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "symlink to %q", target)
	} else {
		fmt.Fprintf(&b, "mode %06o mtime %d", st.Mode, st.Mtim.Sec)
	}
	fmt.Fprintf(&b, " owner %d:%d xattrs", st.Uid, st.Gid)
	for _, k := range slices.Sorted(maps.Keys(xs)) {
		fmt.Fprintf(&b, " %s=%x", k, xs[k])
	}
	return b.String(), nil
}

// splitFilez returns the framed header and the inflated payload of a .filez object (docs/formats/objects.md).
func splitFilez(b []byte) (header, payload []byte, err error) {
	if len(b) < 8 {
		return nil, nil, fmt.Errorf("filez of %d bytes is shorter than its frame", len(b))
	}
	n := int(binary.BigEndian.Uint32(b))
	if n == 0 || 8+n > len(b) {
		return nil, nil, fmt.Errorf("filez header length %d does not fit in %d bytes", n, len(b))
	}
	header, rest := b[:8+n], b[8+n:]
	if len(rest) == 0 {
		return header, nil, nil // symlinks have no deflate stream at all
	}
	payload, err = io.ReadAll(flate.NewReader(bytes.NewReader(rest)))
	if err != nil {
		return nil, nil, fmt.Errorf("inflating filez payload: %w", err)
	}
	return header, payload, nil
}

func compareFilez(got, want []byte) error {
	gh, gp, err := splitFilez(got)
	if err != nil {
		return err
	}
	wh, wp, err := splitFilez(want)
	if err != nil {
		return fmt.Errorf("ostree's object: %w", err)
	}
	if !bytes.Equal(gh, wh) {
		return fmt.Errorf("filez header = %x, want %x", gh, wh)
	}
	if !bytes.Equal(gp, wp) {
		return fmt.Errorf("filez payload: %d bytes %s, want %d bytes %s", len(gp), abbrev(gp), len(wp), abbrev(wp))
	}
	if (len(got) == len(wh)) != (len(want) == len(wh)) {
		return fmt.Errorf("filez has a deflate stream: %v, want %v", len(got) > len(gh), len(want) > len(wh))
	}
	return nil
}

// abbrev shows the first bytes of b in hex.
func abbrev(b []byte) string {
	if len(b) > 48 {
		return fmt.Sprintf("%x…", b[:48])
	}
	return fmt.Sprintf("%x", b)
}
