//go:build peer && root

package interop

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// node is what a tree comparison looks at for one path: type, permission and special mode bits,
// owner, content, symlink target and xattrs. Times, link counts and inode numbers are ignored:
// OSTree does not store them, and checkouts hardlink equal objects.
type node struct {
	typ    string // "dir", "file", "symlink" or "other"
	mode   uint32 // 07777 bits; 0 for symlinks
	uid    uint32
	gid    uint32
	size   int64  // files only
	digest string // sha256 of a file's content
	target string // symlinks only
	xattrs map[string]string
}

// snapshot maps "/"-rooted paths ("/" is the tree's root) to their nodes.
type snapshot map[string]node

// scanTree records every path under root without following symlinks.
func scanTree(root string) (snapshot, error) {
	snap := snapshot{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		key := "/"
		if rel != "." {
			key = "/" + filepath.ToSlash(rel)
		}
		n, err := scanNode(p)
		if err != nil {
			return fmt.Errorf("scanning %q: %w", p, err)
		}
		snap[key] = n
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("scanning tree %s: %w", root, err)
	}
	return snap, nil
}

func scanNode(p string) (node, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return node{}, err
	}
	n := node{mode: st.Mode & 0o7777, uid: st.Uid, gid: st.Gid}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		n.typ = "dir"
	case unix.S_IFREG:
		n.typ = "file"
		n.size = st.Size
		d, err := fileDigest(p)
		if err != nil {
			return node{}, err
		}
		n.digest = d
	case unix.S_IFLNK:
		n.typ = "symlink"
		n.mode = 0
		t, err := os.Readlink(p)
		if err != nil {
			return node{}, err
		}
		n.target = t
	default:
		n.typ = "other"
	}
	xs, err := readXattrs(p)
	if err != nil {
		return node{}, err
	}
	n.xattrs = xs
	return n, nil
}

func fileDigest(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readXattrs returns all extended attributes of p (not following symlinks).
func readXattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	xs := map[string]string{}
	if size == 0 {
		return xs, nil
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, fmt.Errorf("listing xattrs: %w", err)
	}
	for name := range strings.SplitSeq(strings.TrimSuffix(string(buf[:size]), "\x00"), "\x00") {
		v, err := getXattr(p, name)
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		xs[name] = string(v)
	}
	return xs, nil
}

func getXattr(p, name string) ([]byte, error) {
	for {
		size, err := unix.Lgetxattr(p, name, nil)
		if err != nil {
			return nil, err
		}
		buf := make([]byte, size)
		n, err := unix.Lgetxattr(p, name, buf)
		if errors.Is(err, unix.ERANGE) {
			continue // grew in between
		}
		if err != nil {
			return nil, err
		}
		return buf[:n], nil
	}
}

// clone returns a deep copy that transforms can change.
func (s snapshot) clone() snapshot {
	c := make(snapshot, len(s))
	for k, n := range s {
		n.xattrs = maps.Clone(n.xattrs)
		c[k] = n
	}
	return c
}

// committed is what OSTree stores of a source tree: xattrs with an empty value are dropped when
// they are read from disk (docs/formats/objects.md).
func (s snapshot) committed() snapshot {
	c := s.clone()
	for _, n := range c {
		maps.DeleteFunc(n.xattrs, func(_, v string) bool { return v == "" })
	}
	return c
}

// canonical is what a bare-user-only repository stores (docs/formats/objects.md): owner 0:0, file and directory
// modes masked with 0755, no xattrs. Symlinks keep their target only.
func (s snapshot) canonical() snapshot {
	c := s.clone()
	for k, n := range c {
		n.uid, n.gid = 0, 0
		n.mode &= 0o755
		n.xattrs = map[string]string{}
		c[k] = n
	}
	return c
}

// forMode is the tree that a full (not user-mode) checkout of a commit of src reproduces from a
// repository of the given mode. bare-user-only repositories are always checked out in user mode,
// and `ostree checkout` in user mode makes every regular file readable by its owner (a 0000 file
// comes out 0400).
func (s snapshot) forMode(mode string) snapshot {
	if mode != "bare-user-only" {
		return s.committed()
	}
	c := s.canonical()
	for k, n := range c {
		if n.typ == "file" {
			n.mode |= 0o400
			c[k] = n
		}
	}
	return c
}

// linkedFromBareUser normalizes a user-mode checkout of a bare-user repository for a comparison
// between ostree's and strata's. `ostree checkout -U` hardlinks every non-empty regular file from
// a bare-user repository, so its files show the storage mode, (mode & 0775) | 0400, and carry the
// user.ostreemeta xattr of the object; empty files it copies. strata deliberately copies the
// files whose storage mode differs from the committed one (0666, 0777, sticky files...), so that
// they keep their committed permission bits, and hardlinks empty files too. This maps both to
// the storage mode and drops user.ostreemeta.
func (s snapshot) linkedFromBareUser() snapshot {
	c := s.clone()
	for k, n := range c {
		if n.typ == "file" {
			n.mode = n.mode&0o775 | 0o400
			delete(n.xattrs, "user.ostreemeta")
			c[k] = n
		}
	}
	return c
}

// diffTrees lists every difference between want and got, one line per path and property, sorted
// by path. Names are quoted so that control characters show.
func diffTrees(want, got snapshot) []string {
	var diffs []string
	keys := slices.Sorted(maps.Keys(want))
	for _, k := range keys {
		w := want[k]
		g, ok := got[k]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%q: missing (want %s)", k, w.typ))
			continue
		}
		diffs = append(diffs, diffNode(k, w, g)...)
	}
	for _, k := range slices.Sorted(maps.Keys(got)) {
		if _, ok := want[k]; !ok {
			diffs = append(diffs, fmt.Sprintf("%q: unexpected %s", k, got[k].typ))
		}
	}
	return diffs
}

func diffNode(k string, w, g node) []string {
	var diffs []string
	add := func(format string, args ...any) {
		diffs = append(diffs, fmt.Sprintf("%q: ", k)+fmt.Sprintf(format, args...))
	}
	if w.typ != g.typ {
		add("type = %s, want %s", g.typ, w.typ)
		return diffs
	}
	if w.mode != g.mode {
		add("mode = %04o, want %04o", g.mode, w.mode)
	}
	if w.uid != g.uid || w.gid != g.gid {
		add("owner = %d:%d, want %d:%d", g.uid, g.gid, w.uid, w.gid)
	}
	if w.size != g.size {
		add("size = %d, want %d", g.size, w.size)
	} else if w.digest != g.digest {
		add("content sha256 = %s, want %s", g.digest, w.digest)
	}
	if w.target != g.target {
		add("symlink target = %q, want %q", g.target, w.target)
	}
	for _, name := range slices.Sorted(maps.Keys(w.xattrs)) {
		gv, ok := g.xattrs[name]
		switch {
		case !ok:
			add("xattr %s missing (want %q)", name, w.xattrs[name])
		case gv != w.xattrs[name]:
			add("xattr %s = %q, want %q", name, gv, w.xattrs[name])
		}
	}
	for _, name := range slices.Sorted(maps.Keys(g.xattrs)) {
		if _, ok := w.xattrs[name]; !ok {
			add("unexpected xattr %s = %q", name, g.xattrs[name])
		}
	}
	return diffs
}

// summarizeDiffs joins at most max differences for a test message.
func summarizeDiffs(diffs []string, limit int) string {
	if len(diffs) <= limit {
		return strings.Join(diffs, "\n")
	}
	return strings.Join(diffs[:limit], "\n") + fmt.Sprintf("\n... and %d more", len(diffs)-limit)
}
