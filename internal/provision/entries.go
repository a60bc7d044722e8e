package provision

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/coreos/ignition/v2/config/util"
	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/provconfig"
	"golang.org/x/sys/unix"
)

type entryKind int

const (
	kindDir entryKind = iota
	kindFile
	kindSymlink
	kindHardlink
)

// entry is one checked storage.directories, files or links entry, ready to apply.
type entry struct {
	path   string // JSON path
	rel    string
	kind   entryKind
	remove bool // overwrite: remove what is there first
	exists bool // it exists and is kept (no recreation)
	write  bool // file content is (re)written
	data   []byte
	mode   *uint32
	chown  bool
	uid    int
	gid    int
	target string
}

func depth(rel string) int { return strings.Count(rel, "/") }

// planEntries checks every directory, file and link against the tree and Ignition's overwrite
// rules, and orders them as Ignition does: by path depth, parents first, hard links last.
func planEntries(r *root, a *accounts, cfg provconfig.Config, contents map[string][]byte) ([]entry, error) {
	var entries []entry
	for i, d := range cfg.Storage.Directories {
		e, err := planNode(r, a, fmt.Sprintf("$.storage.directories.%d", i), d.Node, kindDir, d.Mode)
		if err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	for i, f := range cfg.Storage.Files {
		p := fmt.Sprintf("$.storage.files.%d", i)
		e, err := planNode(r, a, p, f.Node, kindFile, f.Mode)
		if err != nil {
			return nil, err
		}
		if err := planFile(r, &e, f, contents); err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	for i, l := range cfg.Storage.Links {
		kind := kindSymlink
		if util.IsTrue(l.Hard) {
			kind = kindHardlink
		}
		p := fmt.Sprintf("$.storage.links.%d", i)
		e, err := planNode(r, a, p, l.Node, kind, nil)
		if err != nil {
			return nil, err
		}
		if l.Target == nil {
			return nil, fmt.Errorf("%s.target: missing: %w", p, errdefs.ErrInvalid)
		}
		e.target = *l.Target
		if err := planLink(r, &e); err != nil {
			return nil, err
		}
		entries = append(entries, e)
	}
	sort.SliceStable(entries, func(i, j int) bool {
		hi, hj := entries[i].kind == kindHardlink, entries[j].kind == kindHardlink
		if hi != hj {
			return hj
		}
		return depth(entries[i].rel) < depth(entries[j].rel)
	})
	return entries, nil
}

// planNode resolves the path and owner of a node and applies the overwrite rules common to
// all kinds: an existing node of another kind is an error unless overwrite is set.
func planNode(r *root, a *accounts, p string, n types.Node, kind entryKind, mode *int) (entry, error) {
	e := entry{path: p, kind: kind}
	rel, err := rel(n.Path)
	if err != nil {
		return e, fmt.Errorf("%s.path: %w", p, err)
	}
	if rel == "." {
		return e, fmt.Errorf("%s.path: the root itself: %w", p, errdefs.ErrInvalid)
	}
	e.rel = rel
	st, exists, err := r.lstat(rel)
	if err != nil {
		return e, fmt.Errorf("%s.path: %w", p, err)
	}
	if mode != nil {
		// setuid, setgid and sticky bits take effect from spec 3.6.0 on; the validator warns
		// about them in older configs and Ignition drops them (docs/provisioning.md).
		m := uint32(*mode) & 0o777
		e.mode = &m
	}
	// Ignition keeps the owner of an existing node when the config names none.
	uid, gid := 0, 0
	if exists {
		uid, gid = int(st.Uid), int(st.Gid)
	}
	if n.User.ID != nil {
		uid = *n.User.ID
	} else if util.NotEmpty(n.User.Name) {
		id, ok := a.userID(*n.User.Name)
		if !ok {
			return e, fmt.Errorf("%s.user.name: user %q does not exist: %w", p, *n.User.Name, errdefs.ErrNotFound)
		}
		uid = id
	}
	if n.Group.ID != nil {
		gid = *n.Group.ID
	} else if util.NotEmpty(n.Group.Name) {
		id, ok := a.groupID(*n.Group.Name)
		if !ok {
			return e, fmt.Errorf("%s.group.name: group %q does not exist: %w", p, *n.Group.Name, errdefs.ErrNotFound)
		}
		gid = id
	}
	e.uid, e.gid, e.chown = uid, gid, true
	if !exists {
		if err := r.creatable(rel); err != nil {
			return e, fmt.Errorf("%s.path: %w", p, err)
		}
		return e, nil
	}
	if util.IsTrue(n.Overwrite) {
		e.remove = true
		return e, nil
	}
	ft := st.Mode & unix.S_IFMT
	switch kind {
	case kindDir:
		if ft != unix.S_IFDIR {
			return e, fmt.Errorf("%s: %s exists and is not a directory, and overwrite is false: %w", p, n.Path, errdefs.ErrAlreadyExists)
		}
	case kindFile:
		if ft != unix.S_IFREG {
			return e, fmt.Errorf("%s: %s exists and is not a regular file, and overwrite is false: %w", p, n.Path, errdefs.ErrAlreadyExists)
		}
	}
	e.exists = true
	return e, nil
}

func planFile(r *root, e *entry, f types.File, contents map[string][]byte) error {
	data := contents[e.path+".contents"]
	full := slices.Clone(data)
	for j := range f.Append {
		full = append(full, contents[fmt.Sprintf("%s.append.%d", e.path, j)]...)
	}
	switch {
	case e.exists && f.Contents.Source != nil:
		// A file that already holds exactly what the config would write is what a run cut
		// short left behind: accepting it lets the next run converge (Ignition fails here).
		if old, _, err := r.readFile(e.rel); err == nil && bytes.Equal(old, full) {
			return nil
		}
		return fmt.Errorf("%s: %s exists and overwrite is false: %w", e.path, f.Path, errdefs.ErrAlreadyExists)
	case e.exists && len(f.Append) > 0:
		old, _, err := r.readFile(e.rel)
		if err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		data, e.write = old, true
	case !e.exists:
		e.write = true
		if e.mode == nil {
			m := uint32(0o644)
			e.mode = &m
		}
	}
	for j := range f.Append {
		data = append(data, contents[fmt.Sprintf("%s.append.%d", e.path, j)]...)
	}
	if e.write && e.exists && e.mode == nil {
		st, _, err := r.lstat(e.rel)
		if err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
		m := st.Mode & 0o7777
		e.mode = &m
	}
	e.data = data
	return nil
}

// planLink applies Ignition's rules for an existing link: the same symlink (or the same inode
// for a hard link) is left alone, anything else is an error unless overwrite is set.
func planLink(r *root, e *entry) error {
	if e.kind == kindHardlink {
		trel, err := rel(e.target)
		if err != nil {
			return fmt.Errorf("%s.target: %w", e.path, err)
		}
		e.target = trel
	}
	if !e.exists {
		return nil
	}
	st, _, err := r.lstat(e.rel)
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if e.kind == kindHardlink {
		tst, ok, err := r.lstat(e.target)
		if err != nil || !ok || tst.Ino != st.Ino || tst.Dev != st.Dev {
			return fmt.Errorf("%s: /%s exists, is not the hard link's target, and overwrite is false: %w", e.path, e.rel, errdefs.ErrAlreadyExists)
		}
		e.chown = false
		return nil
	}
	if st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return fmt.Errorf("%s: /%s exists and is not a symlink, and overwrite is false: %w", e.path, e.rel, errdefs.ErrAlreadyExists)
	}
	t, err := readlinkRoot(r, e.rel)
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	if path.Clean(t) != path.Clean(e.target) {
		return fmt.Errorf("%s: /%s is a symlink to %s, not %s, and overwrite is false: %w", e.path, e.rel, t, e.target, errdefs.ErrAlreadyExists)
	}
	// Ignition does nothing to a matching symlink, not even its owner.
	e.chown = false
	return nil
}

// apply makes the entry in the tree.
func (e entry) apply(r *root) error {
	if e.remove {
		if err := r.removeAll(e.rel); err != nil {
			return fmt.Errorf("%s: %w", e.path, err)
		}
	}
	var err error
	switch e.kind {
	case kindDir:
		if err = r.mkdirAll(e.rel); err == nil && e.chown {
			err = r.chown(e.rel, e.uid, e.gid, e.mode)
		}
	case kindFile:
		if e.write {
			err = r.writeFile(e.rel, e.data, *e.mode, e.uid, e.gid)
		} else if e.chown {
			err = r.chown(e.rel, e.uid, e.gid, e.mode)
		}
	case kindSymlink:
		if !e.exists {
			err = e.link(r, func(pfd int, name string) error { return unix.Symlinkat(e.target, pfd, name) })
			if err == nil && e.chown {
				err = r.chown(e.rel, e.uid, e.gid, nil)
			}
		}
	case kindHardlink:
		if !e.exists {
			err = e.hardlink(r)
		}
	}
	if err != nil {
		return fmt.Errorf("%s: %w", e.path, err)
	}
	return nil
}

func (e entry) link(r *root, mk func(pfd int, name string) error) error {
	pfd, name, err := r.parent(e.rel, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := mk(pfd, name); err != nil {
		return &os.PathError{Op: "link", Path: "/" + e.rel, Err: err}
	}
	return nil
}

// hardlink links the target, resolved inside the root, at the entry's path.
func (e entry) hardlink(r *root) error {
	tfd, err := r.open(e.target, unix.O_PATH|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("hard link target: %w", err)
	}
	defer unix.Close(tfd)
	return e.link(r, func(pfd int, name string) error {
		return unix.Linkat(tfd, "", pfd, name, unix.AT_EMPTY_PATH)
	})
}

// apply creates a user's home (copying etc/skel, as useradd --create-home does) and writes
// its SSH keys to ~/.ssh/authorized_keys, where OpenSSH reads them by default.
func (u userPlan) apply(r *root, a *accounts) error {
	if u.removeHome && u.home != "" && u.home != "/" {
		if hrel, err := rel(u.home); err == nil {
			if err := r.removeAll(hrel); err != nil {
				return fmt.Errorf("%s: removing home: %w", u.path, err)
			}
		}
		return nil
	}
	if u.home == "" {
		return nil
	}
	hrel, err := rel(u.home)
	if err != nil {
		return fmt.Errorf("%s.homeDir: %w", u.path, err)
	}
	_, exists, err := r.lstat(hrel)
	if err != nil {
		return fmt.Errorf("%s: %w", u.path, err)
	}
	if u.createHome && !exists {
		mode := uint32(0o777 &^ a.num("UMASK", 0o22))
		if m, ok := a.defs["HOME_MODE"]; ok {
			if v, err := strconv.ParseUint(m, 8, 32); err == nil {
				mode = uint32(v)
			}
		}
		pfd, name, err := r.parent(hrel, true)
		if err == nil {
			err = unix.Mkdirat(pfd, name, 0o700)
			unix.Close(pfd)
		}
		if err == nil {
			err = r.chown(hrel, u.uid, u.gid, &mode)
		}
		if err == nil {
			err = copySkel(r, "etc/skel", hrel, u.uid, u.gid)
		}
		if err != nil {
			return fmt.Errorf("%s: creating home %s: %w", u.path, u.home, err)
		}
	}
	if len(u.keys) == 0 {
		return nil
	}
	ssh := path.Join(hrel, ".ssh")
	if err := r.mkdirAll(ssh); err != nil {
		return fmt.Errorf("%s.sshAuthorizedKeys: %w", u.path, err)
	}
	m := uint32(0o700)
	if err := r.chown(ssh, u.uid, u.gid, &m); err != nil {
		return fmt.Errorf("%s.sshAuthorizedKeys: %w", u.path, err)
	}
	data := strings.Join(u.keys, "\n") + "\n"
	if err := r.writeFile(path.Join(ssh, "authorized_keys"), []byte(data), 0o600, u.uid, u.gid); err != nil {
		return fmt.Errorf("%s.sshAuthorizedKeys: %w", u.path, err)
	}
	return nil
}

// copySkel copies the skeleton directory into a new home, owned by the user.
func copySkel(r *root, skel, home string, uid, gid int) error {
	fd, err := r.open(skel, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil // no skeleton
	}
	d := os.NewFile(uintptr(fd), skel)
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, n := range names {
		src, dst := path.Join(skel, n), path.Join(home, n)
		st, _, err := r.lstat(src)
		if err != nil {
			return err
		}
		mode := st.Mode & 0o7777
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := r.mkdirAll(dst); err != nil {
				return err
			}
			if err := r.chown(dst, uid, gid, &mode); err != nil {
				return err
			}
			if err := copySkel(r, src, dst, uid, gid); err != nil {
				return err
			}
		case unix.S_IFREG:
			data, _, err := r.readFile(src)
			if err != nil {
				return err
			}
			if err := r.writeFile(dst, data, mode, uid, gid); err != nil {
				return err
			}
		case unix.S_IFLNK:
			t, err := readlinkRoot(r, src)
			if err != nil {
				return err
			}
			if err := replaceSymlink(r, dst, t); err != nil {
				return err
			}
			if err := r.chown(dst, uid, gid, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSpace compares what will be written with the free space and inodes of the
// filesystems it lands on (a deployment's /var is another one than its /etc), so that a full
// disk is found before the tree is touched.
//
// It returns one directory per filesystem written to, for the final sync.
func checkSpace(r *root, a *accounts, entries []entry, units []unitPlan) ([]string, error) {
	type need struct {
		st            unix.Statfs_t
		bytes, inodes uint64
		where         string
	}
	const block = 4096
	round := func(n int) uint64 { return (uint64(n) + block - 1) / block * block }
	byFS := map[[2]int32]*need{}
	byDir := map[string]unix.Statfs_t{}
	add := func(rel string, n int) error {
		st, ok := byDir[path.Dir(rel)]
		if !ok {
			var err error
			if st, err = r.statfs(rel); err != nil {
				return fmt.Errorf("checking free space for /%s: %w", rel, err)
			}
			byDir[path.Dir(rel)] = st
		}
		k := [2]int32(st.Fsid.Val)
		if byFS[k] == nil {
			// Room for homes, directories made on the way and the result file.
			byFS[k] = &need{st: st, bytes: 1 << 20, inodes: 64, where: "/" + rel}
		}
		byFS[k].bytes += round(n)
		byFS[k].inodes++
		return nil
	}
	for _, e := range entries {
		if err := add(e.rel, len(e.data)); err != nil {
			return nil, err
		}
	}
	for _, u := range units {
		n := len(u.dropins) + len(u.links)
		if u.contents != nil {
			n += len(*u.contents)
		}
		for _, d := range u.dropins {
			n += len(d)
		}
		if err := add(unitDir, n); err != nil {
			return nil, err
		}
	}
	for _, f := range a.files() {
		if f.changed {
			if err := add(f.rel, len(f.bytes())); err != nil {
				return nil, err
			}
		}
	}
	// The result file, written last.
	if err := add(ResultFile, 4096); err != nil {
		return nil, err
	}
	var dirs []string
	for _, k := range sortedKeys(byFS) {
		n := byFS[k]
		dirs = append(dirs, path.Dir(strings.TrimPrefix(n.where, "/")))
		if free := n.st.Bavail * uint64(n.st.Bsize); n.bytes > free {
			return nil, fmt.Errorf("$.storage: the config writes about %d bytes to the filesystem of %s, which has %d free: %w", n.bytes, n.where, free, errdefs.ErrFailedPrecondition)
		}
		if n.st.Files > 0 && n.inodes > n.st.Ffree {
			return nil, fmt.Errorf("$.storage: the config makes about %d files on the filesystem of %s, which has %d free inodes: %w", n.inodes, n.where, n.st.Ffree, errdefs.ErrFailedPrecondition)
		}
	}
	return dirs, nil
}
