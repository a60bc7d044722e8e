package repo

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// EntryKind says what a tree entry is.
type EntryKind string

// The kinds of tree entries. A file entry is a content object: a regular
// file or a symlink (FileInfo tells which).
const (
	EntryDir  EntryKind = "dir"
	EntryFile EntryKind = "file"
)

// WalkEntry is one entry of a commit's tree as WalkCommit visits it. The
// names and checksums come from the parent dirtree; metadata is loaded
// only when asked for (DirMeta, FileInfo), so a walk that needs names only
// reads dirtree objects only.
type WalkEntry struct {
	Path     string // absolute inside the commit: "/" for the root, "/usr/bin/sh"
	Kind     EntryKind
	Checksum ostree.Checksum // content object (files) or dirtree (dirs)
	Meta     ostree.Checksum // dirmeta (dirs only)

	r *Repo
}

// Name returns the last element of the entry's path ("/" for the root).
func (e *WalkEntry) Name() string { return path.Base(e.Path) }

// Object names the entry's object: the content object of a file, the
// dirtree of a directory.
func (e *WalkEntry) Object() ostree.ObjectName {
	if e.Kind == EntryDir {
		return ostree.ObjectName{Checksum: e.Checksum, Type: ostree.ObjectDirTree}
	}
	return ostree.ObjectName{Checksum: e.Checksum, Type: ostree.ObjectFile}
}

// DirMeta reads, verifies and parses a directory's dirmeta object.
func (e *WalkEntry) DirMeta() (ostree.DirMeta, error) {
	if e.Kind != EntryDir {
		return ostree.DirMeta{}, fmt.Errorf("%s is not a directory: %w", e.Path, errdefs.ErrInvalid)
	}
	return e.r.readDirMetaChecked(e.Meta)
}

// DirTree reads, verifies and parses a directory's dirtree object.
func (e *WalkEntry) DirTree() (ostree.DirTree, error) {
	if e.Kind != EntryDir {
		return ostree.DirTree{}, fmt.Errorf("%s is not a directory: %w", e.Path, errdefs.ErrInvalid)
	}
	return e.r.readDirTreeChecked(e.Checksum)
}

// FileInfo reads a file entry's metadata and payload size from its
// content object's header. The payload is not read, so its checksum is
// not verified (Checkout and Cat verify what they read).
func (e *WalkEntry) FileInfo() (ostree.FileInfo, int64, error) {
	if e.Kind != EntryFile {
		return ostree.FileInfo{}, 0, fmt.Errorf("%s is not a file: %w", e.Path, errdefs.ErrInvalid)
	}
	return e.r.ContentInfo(e.Checksum)
}

// WalkFunc is called by WalkCommit for every entry, parents before their
// children, like fs.WalkDirFunc:
//
//   - err is nil on the first call for an entry. Returning fs.SkipDir from
//     a directory's call skips its children; fs.SkipAll ends the walk
//     without error; any other error ends it with that error.
//   - When a directory's dirtree cannot be read, verified or parsed, fn is
//     called a second time for that directory with the error. Returning nil
//     continues with the directory's siblings (fsck collects problems this
//     way); returning an error ends the walk.
type WalkFunc func(e *WalkEntry, err error) error

// WalkCommit walks the tree of a commit in ostree's order: a directory,
// then its files, then each subdirectory with everything below it, each
// list sorted by name (the order of `ostree ls -R`). Every dirtree it
// reads is verified against its checksum and parsed strictly, so names are
// safe path elements. The commit object itself must be readable and valid.
func WalkCommit(ctx context.Context, r *Repo, commit ostree.Checksum, fn WalkFunc) error {
	root, err := CommitRoot(r, commit)
	if err != nil {
		return err
	}
	return Walk(ctx, r, root, fn)
}

// CommitRoot returns the root directory entry of a commit, after reading
// and verifying the commit object.
func CommitRoot(r *Repo, commit ostree.Checksum) (*WalkEntry, error) {
	cm, err := r.readCommitChecked(commit)
	if err != nil {
		return nil, err
	}
	return &WalkEntry{Path: "/", Kind: EntryDir, Checksum: cm.RootTree, Meta: cm.RootMeta, r: r}, nil
}

// Walk walks the subtree below start (an entry from CommitRoot, Lookup
// or an earlier walk), start included, as WalkCommit does.
func Walk(ctx context.Context, r *Repo, start *WalkEntry, fn WalkFunc) error {
	start.r = r
	err := walkEntry(ctx, r, start, fn)
	if errors.Is(err, fs.SkipDir) || errors.Is(err, fs.SkipAll) {
		return nil
	}
	return err
}

func walkEntry(ctx context.Context, r *Repo, e *WalkEntry, fn WalkFunc) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := fn(e, nil); err != nil || e.Kind != EntryDir {
		return err
	}
	t, err := r.readDirTreeChecked(e.Checksum)
	if err != nil {
		if err := fn(e, fmt.Errorf("directory %s: %w", e.Path, err)); err != nil {
			return err
		}
		return nil
	}
	for _, f := range t.Files {
		err := walkEntry(ctx, r, &WalkEntry{Path: joinTreePath(e.Path, f.Name), Kind: EntryFile, Checksum: f.Checksum, r: r}, fn)
		if errors.Is(err, fs.SkipDir) {
			return nil // like fs.WalkDir: SkipDir from a file skips the rest of its directory
		}
		if err != nil {
			return err
		}
	}
	for _, d := range t.Dirs {
		err := walkEntry(ctx, r, &WalkEntry{Path: joinTreePath(e.Path, d.Name), Kind: EntryDir, Checksum: d.Tree, Meta: d.Meta, r: r}, fn)
		if err != nil && !errors.Is(err, fs.SkipDir) {
			return err
		}
	}
	return nil
}

func joinTreePath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// Lookup finds the entry at path (absolute or relative to the root; "/"
// or "" is the root) in a commit's tree. A missing path is
// errdefs.ErrNotFound; a path through a file is errdefs.ErrInvalid.
func Lookup(r *Repo, commit ostree.Checksum, p string) (*WalkEntry, error) {
	e, err := CommitRoot(r, commit)
	if err != nil {
		return nil, err
	}
	clean := path.Clean("/" + p)
	if clean == "/" {
		return e, nil
	}
	for _, name := range strings.Split(clean[1:], "/") {
		if e.Kind != EntryDir {
			return nil, fmt.Errorf("path %s in commit %s: %s is not a directory: %w", clean, commit, e.Path, errdefs.ErrInvalid)
		}
		t, err := r.readDirTreeChecked(e.Checksum)
		if err != nil {
			return nil, fmt.Errorf("path %s in commit %s: %w", clean, commit, err)
		}
		next := findTreeEntry(t, name)
		if next == nil {
			return nil, fmt.Errorf("path %s in commit %s: no such file or directory: %w", clean, commit, errdefs.ErrNotFound)
		}
		next.Path, next.r = joinTreePath(e.Path, name), r
		e = next
	}
	return e, nil
}

// findTreeEntry looks a name up in a dirtree (both lists are sorted).
func findTreeEntry(t ostree.DirTree, name string) *WalkEntry {
	lo, hi := 0, len(t.Files)
	for lo < hi {
		m := (lo + hi) / 2
		if t.Files[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t.Files) && t.Files[lo].Name == name {
		return &WalkEntry{Kind: EntryFile, Checksum: t.Files[lo].Checksum}
	}
	lo, hi = 0, len(t.Dirs)
	for lo < hi {
		m := (lo + hi) / 2
		if t.Dirs[m].Name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(t.Dirs) && t.Dirs[lo].Name == name {
		return &WalkEntry{Kind: EntryDir, Checksum: t.Dirs[lo].Tree, Meta: t.Dirs[lo].Meta}
	}
	return nil
}

var (
	strictDirTreeType = gvariant.MustType("(a(say)a(sayay))")
	strictDirMetaType = gvariant.MustType("(uuua(ayay))")
	strictCommitType  = gvariant.MustType("(a{sv}aya(say)sstayay)")
)

// readMetaChecked reads a metadata object and checks that its bytes hash
// to its name and are a normal-form GVariant of the object's type: the
// strict reading every walk, checkout and inspection uses. A mismatch is
// errdefs.ErrCorrupt naming the object.
func (r *Repo) readMetaChecked(typ ostree.ObjectType, c ostree.Checksum) ([]byte, error) {
	n := ostree.ObjectName{Checksum: c, Type: typ}
	b, err := walkReadFile(r.ObjectPath(n), n)
	if err != nil {
		return nil, err
	}
	if err := verifyMetadata(n, b); err != nil {
		return nil, err
	}
	return b, nil
}

// verifiable reports whether metadata of type typ is named by its own hash
// and has a strict type: commit, dirtree and dirmeta.
func verifiable(typ ostree.ObjectType) bool {
	return typ == ostree.ObjectCommit || typ == ostree.ObjectDirTree || typ == ostree.ObjectDirMeta
}

// verifyMetadata checks that b hashes to n's name and is a normal-form
// GVariant of n's type.
func verifyMetadata(n ostree.ObjectName, b []byte) error {
	if got := ostree.MetadataChecksum(b); got != n.Checksum {
		return fmt.Errorf("object %s: content hashes to %s: %w", n, got, errdefs.ErrCorrupt)
	}
	var t *gvariant.Type
	switch n.Type {
	case ostree.ObjectDirTree:
		t = strictDirTreeType
	case ostree.ObjectDirMeta:
		t = strictDirMetaType
	case ostree.ObjectCommit:
		t = strictCommitType
	}
	if t != nil && !gvariant.IsNormal(t, b) {
		return fmt.Errorf("object %s: not a normal-form %s: %w", n, t, errdefs.ErrCorrupt)
	}
	return nil
}

func (r *Repo) readDirTreeChecked(c ostree.Checksum) (ostree.DirTree, error) {
	b, err := r.readMetaChecked(ostree.ObjectDirTree, c)
	if err != nil {
		return ostree.DirTree{}, err
	}
	t, err := ostree.ParseDirTree(b)
	if err != nil {
		return t, fmt.Errorf("object %s.dirtree: %w", c, err)
	}
	return t, nil
}

func (r *Repo) readDirMetaChecked(c ostree.Checksum) (ostree.DirMeta, error) {
	b, err := r.readMetaChecked(ostree.ObjectDirMeta, c)
	if err != nil {
		return ostree.DirMeta{}, err
	}
	d, err := ostree.ParseDirMeta(b)
	if err != nil {
		return d, fmt.Errorf("object %s.dirmeta: %w", c, err)
	}
	return d, nil
}

func (r *Repo) readCommitChecked(c ostree.Checksum) (*ostree.Commit, error) {
	b, err := r.readMetaChecked(ostree.ObjectCommit, c)
	if err != nil {
		return nil, err
	}
	cm, err := ostree.ParseCommit(b)
	if err != nil {
		return nil, fmt.Errorf("object %s.commit: %w", c, err)
	}
	return cm, nil
}

// walkReadFile reads a metadata object with plain system calls: a tree
// walk reads thousands of small objects, and os.File's poller setup costs
// more than the read.
func walkReadFile(p string, n ostree.ObjectName) ([]byte, error) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, notFound(n, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, fmt.Errorf("reading object %s: %w", n, err)
	}
	if st.Size > MaxMetadataSize {
		return nil, fmt.Errorf("object %s is larger than %d bytes: %w", n, MaxMetadataSize, errdefs.ErrCorrupt)
	}
	b := make([]byte, st.Size)
	for off := 0; off < len(b); {
		m, err := unix.Read(fd, b[off:])
		if err != nil {
			return nil, fmt.Errorf("reading object %s: %w", n, err)
		}
		if m == 0 {
			return nil, fmt.Errorf("object %s: truncated while reading: %w", n, errdefs.ErrCorrupt)
		}
		off += m
	}
	return b, nil
}
