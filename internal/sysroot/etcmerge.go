package sysroot

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"slices"

	"golang.org/x/sys/unix"
)

// The /etc three-way merge of libostree 2022.7 (docs/formats/sysroot.md;
// ostree-sysroot-deploy.c merge_configuration_from and ostree-diff.c
// ostree_diff_dirs with OSTREE_DIFF_FLAGS_IGNORE_XATTRS).
//
// Vocabulary, as in docs/formats/sysroot.md: OLD_DEFAULT is the merge deployment's usr/etc,
// OLD_ETC its etc (defaults plus local changes), NEW_ETC the new
// deployment's etc, which starts as a copy of the new usr/etc. The local
// changes are the diff OLD_DEFAULT → OLD_ETC; they are replayed on NEW_ETC
// and always win over the new defaults (no content merge).

// EtcDiff is the local configuration change of a deployment: what
// `ostree admin config-diff` prints as M, D and A. Paths are relative to
// etc, slash-separated and sorted.
type EtcDiff struct {
	// Modified paths exist in both trees but differ in file type, or in
	// uid, gid, mode, symlink target or content. Extended attributes do not
	// count, and a directory counts by its own uid, gid and mode (its
	// children are compared one by one).
	Modified []string
	// Removed paths are in the defaults and not in etc. Only the top of a
	// removed tree is listed.
	Removed []string
	// Added paths are in etc and not in the defaults. An added directory is
	// listed with every path below it.
	Added []string
}

// DiffEtc compares a deployment's default configuration oldDefault
// (usr/etc) with its etc oldEtc, as `ostree admin config-diff` does.
// Symlinks are compared by target and never followed.
func DiffEtc(oldDefault, oldEtc string) (EtcDiff, error) {
	a, b, err := openEtcPair(oldDefault, oldEtc)
	if err != nil {
		return EtcDiff{}, err
	}
	defer a.Close()
	defer b.Close()
	d, err := diffEtcDirs(a, b)
	if err != nil {
		return EtcDiff{}, fmt.Errorf("comparing %s with %s: %w", oldDefault, oldEtc, err)
	}
	out := EtcDiff{
		Modified: slices.Clone(d.modified),
		Removed:  slices.Clone(d.removed),
		Added:    slices.Clone(d.added),
	}
	slices.Sort(out.Modified)
	slices.Sort(out.Removed)
	slices.Sort(out.Added)
	return out, nil
}

func openEtcPair(oldDefault, oldEtc string) (a, b *os.Root, err error) {
	a, err = os.OpenRoot(oldDefault)
	if err != nil {
		return nil, nil, fmt.Errorf("opening default configuration %s: %w", oldDefault, err)
	}
	b, err = os.OpenRoot(oldEtc)
	if err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("opening configuration %s: %w", oldEtc, err)
	}
	return a, b, nil
}

// MergeEtc applies the local configuration change of the merge deployment
// (oldDefault → oldEtc) to newEtc, the new deployment's etc, in place,
// exactly as libostree 2022.7 does at deploy time:
//
//  1. every removed path is removed from newEtc (rm -rf), even when the new
//     defaults changed it;
//  2. every modified path, then every added one, is copied from oldEtc over
//     newEtc: missing parent directories are created with the owner, mode
//     and xattrs of their oldEtc counterpart, and the parent that holds the
//     copied path takes those attributes too; a directory that is a
//     directory in newEtc already is left as it is (so a mode change of a
//     directory that holds no changed path is lost); a non-directory
//     whose new default is a directory is an error (errdefs.ErrFailedPrecondition);
//     anything else is unlinked and copied: directories recursively, regular
//     files and symlinks with owner, mode, xattrs (and, for regular files,
//     times); a fifo, socket or device is skipped, except inside a copied
//     directory where it is an error, as in libostree.
//
// The three paths are the caller's (Deploy reaches them through
// mergeDeploymentEtc, which refuses symlinks on the way); everything below
// them is resolved inside them. Paths in oldDefault and oldEtc are never
// followed through symlinks. In newEtc, directories on the way to a path
// are followed through symlinks as libostree does, but only while they
// stay inside newEtc: an absolute symlink or one that climbs out is an
// error, never a write outside. The final component of every write is
// never followed.
//
// Nothing is fsynced: the caller syncs the filesystem once. On error newEtc
// is left half-merged and must be thrown away with its deployment.
func MergeEtc(oldDefault, oldEtc, newEtc string) error {
	a, b, err := openEtcPair(oldDefault, oldEtc)
	if err != nil {
		return err
	}
	defer a.Close()
	defer b.Close()
	n, err := os.OpenRoot(newEtc)
	if err != nil {
		return fmt.Errorf("opening new configuration %s: %w", newEtc, err)
	}
	defer n.Close()
	return mergeEtcRoots(a, b, n)
}

// mergeEtcRoots is MergeEtc on opened directories; errors name paths
// relative to them.
func mergeEtcRoots(oldDefault, oldEtc, newEtc *os.Root) error {
	d, err := diffEtcDirs(oldDefault, oldEtc)
	if err != nil {
		return fmt.Errorf("comparing the default configuration with etc: %w", err)
	}
	m := &etcMerger{old: oldEtc, new: newEtc}
	for _, p := range d.removed {
		if err := m.removeAll(p); err != nil {
			return fmt.Errorf("removing %s from the new etc: %w", p, err)
		}
	}
	for _, list := range [][]string{d.modified, d.added} {
		for _, p := range list {
			if err := m.copyModified(p); err != nil {
				return fmt.Errorf("copying %s from etc to the new etc: %w", p, err)
			}
		}
	}
	return nil
}

// mergeDeploymentEtc merges the /etc of the merge deployment at mroot into
// the new deployment at root. Both trees are commit content: usr, usr/etc
// and etc must be directories in each, never symlinks (errdefs.ErrInvalid),
// and each is opened inside its deployment's os.Root, so a symlink planted
// by a commit cannot point the merge at the host.
func mergeDeploymentEtc(mroot, root string) error {
	mr, err := os.OpenRoot(mroot)
	if err != nil {
		return fmt.Errorf("opening merge deployment: %w", err)
	}
	defer mr.Close()
	nr, err := os.OpenRoot(root)
	if err != nil {
		return fmt.Errorf("opening new deployment: %w", err)
	}
	defer nr.Close()
	var opened []*os.Root
	defer func() {
		for _, r := range opened {
			r.Close()
		}
	}()
	for _, o := range []struct {
		root *os.Root
		rel  string
		what string
	}{{mr, "usr/etc", "merge deployment"}, {mr, "etc", "merge deployment"}, {nr, "etc", "new deployment"}} {
		r, err := openTreeDir(o.root, o.rel)
		if err != nil {
			return fmt.Errorf("opening /%s of the %s: %w", o.rel, o.what, err)
		}
		opened = append(opened, r)
	}
	return mergeEtcRoots(opened[0], opened[1], opened[2])
}

// etcDiff holds the three lists in libostree's order: a depth-first walk
// of each directory in readdir order, the defaults' entries first (removed
// and modified, recursing into directories present in both), then the
// entries only etc has (added, each followed by its subtree). MergeEtc
// replays them in that order, as libostree does.
type etcDiff struct {
	modified, removed, added []string
	bufA, bufB               []byte // content comparison, reused
}

func diffEtcDirs(oldDefault, oldEtc *os.Root) (*etcDiff, error) {
	a, err := oldDefault.Open(".")
	if err != nil {
		return nil, fmt.Errorf("opening the default configuration: %w", err)
	}
	defer a.Close()
	b, err := oldEtc.Open(".")
	if err != nil {
		return nil, fmt.Errorf("opening the configuration: %w", err)
	}
	defer b.Close()
	d := &etcDiff{}
	if err := d.dirs(a, b, ""); err != nil {
		return nil, err
	}
	return d, nil
}

// dirs compares the directories a (defaults) and b (etc), both at rel.
func (d *etcDiff) dirs(a, b *os.File, rel string) error {
	names, err := a.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", etcShow(rel), err)
	}
	afd, bfd := int(a.Fd()), int(b.Fd())
	for _, name := range names {
		p := path.Join(rel, name)
		var sa, sb unix.Stat_t
		if err := unix.Fstatat(afd, name, &sa, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if err := unix.Fstatat(bfd, name, &sb, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if errors.Is(err, unix.ENOENT) {
				d.removed = append(d.removed, p)
				continue
			}
			return fmt.Errorf("stat %s: %w", p, err)
		}
		// libostree compares GFileTypes first: fifos, sockets and
		// devices are one type ("special"), told apart by the mode below.
		if etcKind(sa.Mode) != etcKind(sb.Mode) {
			d.modified = append(d.modified, p)
			continue
		}
		same, err := d.sameFile(afd, bfd, name, &sa, &sb)
		if err != nil {
			return fmt.Errorf("comparing %s: %w", p, err)
		}
		if !same {
			d.modified = append(d.modified, p)
		}
		if etcKind(sa.Mode) == etcKindDir {
			if err := d.subdirs(afd, bfd, name, p); err != nil {
				return err
			}
		}
	}
	names, err = b.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", etcShow(rel), err)
	}
	for _, name := range names {
		p := path.Join(rel, name)
		var sa, sb unix.Stat_t
		err := unix.Fstatat(afd, name, &sa, unix.AT_SYMLINK_NOFOLLOW)
		if err == nil {
			continue
		}
		if !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		d.added = append(d.added, p)
		if err := unix.Fstatat(bfd, name, &sb, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if etcKind(sb.Mode) == etcKindDir {
			sub, err := etcOpenDir(bfd, name)
			if err != nil {
				return fmt.Errorf("opening %s: %w", p, err)
			}
			err = d.addTree(sub, p)
			sub.Close()
			if err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *etcDiff) subdirs(afd, bfd int, name, p string) error {
	a, err := etcOpenDir(afd, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer a.Close()
	b, err := etcOpenDir(bfd, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", p, err)
	}
	defer b.Close()
	return d.dirs(a, b, p)
}

// addTree lists everything below the added directory dir (at rel), each
// entry before its own subtree.
func (d *etcDiff) addTree(dir *os.File, rel string) error {
	names, err := dir.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", rel, err)
	}
	fd := int(dir.Fd())
	for _, name := range names {
		p := path.Join(rel, name)
		d.added = append(d.added, p)
		var st unix.Stat_t
		if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("stat %s: %w", p, err)
		}
		if etcKind(st.Mode) != etcKindDir {
			continue
		}
		sub, err := etcOpenDir(fd, name)
		if err != nil {
			return fmt.Errorf("opening %s: %w", p, err)
		}
		err = d.addTree(sub, p)
		sub.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

type etcFileKind int

const (
	etcKindRegular etcFileKind = iota
	etcKindDir
	etcKindSymlink
	etcKindSpecial // fifo, socket, character or block device
)

func etcKind(mode uint32) etcFileKind {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG:
		return etcKindRegular
	case unix.S_IFDIR:
		return etcKindDir
	case unix.S_IFLNK:
		return etcKindSymlink
	}
	return etcKindSpecial
}

// sameFile reports whether two entries of the same kind have the same
// ostree checksum with xattrs ignored (docs/formats/objects.md): uid, gid and the
// whole st_mode, plus the target of a symlink and the content of a regular
// file. The header carries no rdev, so devices differing only in number
// are the same.
func (d *etcDiff) sameFile(afd, bfd int, name string, sa, sb *unix.Stat_t) (bool, error) {
	if sa.Uid != sb.Uid || sa.Gid != sb.Gid || sa.Mode != sb.Mode {
		return false, nil
	}
	switch etcKind(sa.Mode) {
	case etcKindSymlink:
		ta, err := etcReadlink(afd, name)
		if err != nil {
			return false, err
		}
		tb, err := etcReadlink(bfd, name)
		if err != nil {
			return false, err
		}
		return ta == tb, nil
	case etcKindRegular:
		if sa.Size != sb.Size {
			return false, nil
		}
		return d.sameContent(afd, bfd, name)
	}
	return true, nil
}

func (d *etcDiff) sameContent(afd, bfd int, name string) (bool, error) {
	fa, err := etcOpenFile(afd, name)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := etcOpenFile(bfd, name)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	if d.bufA == nil {
		const bufSize = 64 << 10
		d.bufA, d.bufB = make([]byte, bufSize), make([]byte, bufSize)
	}
	ba, bb := d.bufA, d.bufB
	for {
		na, errA := io.ReadFull(fa, ba)
		nb, errB := io.ReadFull(fb, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		endA, endB := etcReadEnd(errA), etcReadEnd(errB)
		if endA && endB {
			return true, nil
		}
		if endA != endB {
			return false, nil
		}
		for _, err := range []error{errA, errB} {
			if err != nil && !etcReadEnd(err) {
				return false, err
			}
		}
	}
}

func etcReadEnd(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

// etcOpenDir opens the directory name under dirfd, never through a
// symlink.
func etcOpenDir(dirfd int, name string) (*os.File, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC | unix.O_NONBLOCK | unix.O_NOFOLLOW
	fd, err := etcOpenat(dirfd, name, flags)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

// etcOpenFile opens the regular file name under dirfd for reading,
// never through a symlink and never blocking on a fifo.
func etcOpenFile(dirfd int, name string) (*os.File, error) {
	fd, err := etcOpenat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NOCTTY|unix.O_NONBLOCK)
	if err != nil {
		return nil, err
	}
	return os.NewFile(uintptr(fd), name), nil
}

func etcOpenat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return -1, &os.PathError{Op: "openat", Path: name, Err: err}
		}
		return fd, nil
	}
}

func etcReadlink(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", &os.PathError{Op: "readlinkat", Path: name, Err: err}
		}
		if n < size {
			return string(buf[:n]), nil
		}
	}
}

func etcShow(rel string) string {
	if rel == "" {
		return "."
	}
	return rel
}
