package ostree

import (
	"crypto/sha256"
	"fmt"
	"sort"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

var (
	dirMetaType = gvariant.MustType("(uuua(ayay))")
	dirTreeType = gvariant.MustType("(a(say)a(sayay))")
)

// DirMeta is a directory's metadata object (docs/formats/objects.md). Mode includes
// S_IFDIR.
type DirMeta struct {
	UID, GID, Mode uint32
	Xattrs         []Xattr // canonical order
}

// Marshal serializes d in normal form; its sha256 is the object name.
func (d DirMeta) Marshal() []byte {
	b, err := gvariant.Marshal(dirMetaType, gvariant.Tuple{be32(d.UID), be32(d.GID), be32(d.Mode), xattrsValue(d.Xattrs)})
	if err != nil {
		panic("internal error: dirmeta: " + err.Error())
	}
	return b
}

// ParseDirMeta decodes and validates a dirmeta object.
func ParseDirMeta(b []byte) (DirMeta, error) {
	v, err := gvariant.Unmarshal(dirMetaType, b)
	if err != nil {
		return DirMeta{}, fmt.Errorf("dirmeta: %w: %w", errdefs.ErrCorrupt, err)
	}
	tu := v.(gvariant.Tuple)
	d := DirMeta{UID: be32(tu[0].(uint32)), GID: be32(tu[1].(uint32)), Mode: be32(tu[2].(uint32))}
	if d.Xattrs, err = parseXattrs(tu[3]); err != nil {
		return DirMeta{}, err
	}
	if d.Mode&ModeTypeMask != ModeDir || d.Mode&^(ModeTypeMask|ModePermMask) != 0 {
		return DirMeta{}, fmt.Errorf("dirmeta mode %#o: %w", d.Mode, errdefs.ErrCorrupt)
	}
	return d, nil
}

// TreeFile is a dirtree entry for a regular file or symlink.
type TreeFile struct {
	Name     string
	Checksum Checksum
}

// TreeDir is a dirtree entry for a subdirectory.
type TreeDir struct {
	Name string
	Tree Checksum
	Meta Checksum
}

// DirTree is a directory's listing (docs/formats/objects.md).
type DirTree struct {
	Files []TreeFile
	Dirs  []TreeDir
}

// Sort orders both lists by name (bytewise, as strcmp).
func (t *DirTree) Sort() {
	sort.Slice(t.Files, func(i, j int) bool { return t.Files[i].Name < t.Files[j].Name })
	sort.Slice(t.Dirs, func(i, j int) bool { return t.Dirs[i].Name < t.Dirs[j].Name })
}

// Marshal serializes t; both lists must already be sorted (Sort).
func (t DirTree) Marshal() []byte {
	files := make([]any, len(t.Files))
	for i, f := range t.Files {
		files[i] = gvariant.Tuple{f.Name, f.Checksum[:]}
	}
	dirs := make([]any, len(t.Dirs))
	for i, d := range t.Dirs {
		dirs[i] = gvariant.Tuple{d.Name, d.Tree[:], d.Meta[:]}
	}
	b, err := gvariant.Marshal(dirTreeType, gvariant.Tuple{files, dirs})
	if err != nil {
		panic("internal error: dirtree: " + err.Error())
	}
	return b
}

// ParseDirTree decodes a dirtree and validates names, order and uniqueness,
// so that a checkout of it can never escape its directory.
func ParseDirTree(b []byte) (DirTree, error) {
	v, err := gvariant.Unmarshal(dirTreeType, b)
	if err != nil {
		return DirTree{}, fmt.Errorf("dirtree: %w: %w", errdefs.ErrCorrupt, err)
	}
	tu := v.(gvariant.Tuple)
	files, dirs := tu[0].([]any), tu[1].([]any)
	t := DirTree{Files: make([]TreeFile, len(files)), Dirs: make([]TreeDir, len(dirs))}
	seen := make(map[string]bool, len(files)+len(dirs))
	for i, f := range files {
		ft := f.(gvariant.Tuple)
		c, err := ChecksumFromBytes(ft[1].([]byte))
		if err != nil {
			return DirTree{}, fmt.Errorf("dirtree: %w", errdefs.ErrCorrupt)
		}
		t.Files[i] = TreeFile{Name: ft[0].(string), Checksum: c}
	}
	for i, d := range dirs {
		dt := d.(gvariant.Tuple)
		tc, err1 := ChecksumFromBytes(dt[1].([]byte))
		mc, err2 := ChecksumFromBytes(dt[2].([]byte))
		if err1 != nil || err2 != nil {
			return DirTree{}, fmt.Errorf("dirtree: %w", errdefs.ErrCorrupt)
		}
		t.Dirs[i] = TreeDir{Name: dt[0].(string), Tree: tc, Meta: mc}
	}
	check := func(prev, name string, i int) error {
		if err := ValidateFilename(name); err != nil {
			return fmt.Errorf("dirtree: %w: %w", errdefs.ErrCorrupt, err)
		}
		if i > 0 && prev >= name {
			return fmt.Errorf("dirtree: entries not sorted at %q: %w", name, errdefs.ErrCorrupt)
		}
		if seen[name] {
			return fmt.Errorf("dirtree: duplicate name %q: %w", name, errdefs.ErrCorrupt)
		}
		seen[name] = true
		return nil
	}
	for i, f := range t.Files {
		prev := ""
		if i > 0 {
			prev = t.Files[i-1].Name
		}
		if err := check(prev, f.Name, i); err != nil {
			return DirTree{}, err
		}
	}
	for i, d := range t.Dirs {
		prev := ""
		if i > 0 {
			prev = t.Dirs[i-1].Name
		}
		if err := check(prev, d.Name, i); err != nil {
			return DirTree{}, err
		}
	}
	return t, nil
}

// EmptyDirTree is the checksum of a dirtree with no entries, sha256(00).
var EmptyDirTree = Checksum(sha256.Sum256([]byte{0}))

// MetadataChecksum names a metadata object: sha256 of its bytes (docs/formats/objects.md).
func MetadataChecksum(b []byte) Checksum { return sha256.Sum256(b) }
