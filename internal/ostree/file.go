package ostree

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/bits"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

// File type bits of a mode, as in stat(2).
const (
	ModeTypeMask uint32 = 0o170000
	ModeReg      uint32 = 0o100000
	ModeDir      uint32 = 0o040000
	ModeSymlink  uint32 = 0o120000
	ModePermMask uint32 = 0o7777
)

// Xattr is one extended attribute. Names are stored without the trailing
// NUL that the serialized form carries.
type Xattr struct {
	Name  string
	Value []byte
}

// CanonicalXattrs returns xattrs as libostree hashes them: sorted by name
// (strcmp) with empty values dropped (docs/formats/objects.md). The input is not modified.
func CanonicalXattrs(xs []Xattr) []Xattr {
	out := make([]Xattr, 0, len(xs))
	for _, x := range xs {
		if len(x.Value) > 0 {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func xattrsValue(xs []Xattr) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = gvariant.Tuple{append([]byte(x.Name), 0), x.Value}
	}
	return out
}

func parseXattrs(v any) ([]Xattr, error) {
	arr, _ := v.([]any)
	out := make([]Xattr, 0, len(arr))
	for _, e := range arr {
		tu := e.(gvariant.Tuple)
		name, val := tu[0].([]byte), tu[1].([]byte)
		if len(name) == 0 || name[len(name)-1] != 0 || bytes.IndexByte(name[:len(name)-1], 0) >= 0 {
			return nil, fmt.Errorf("xattr name %q not NUL-terminated: %w", name, errdefs.ErrInvalid)
		}
		out = append(out, Xattr{Name: string(name[:len(name)-1]), Value: val})
	}
	return out, nil
}

// FileInfo is the metadata of a content object: a regular file or a
// symlink. Mode includes the type bits.
type FileInfo struct {
	UID, GID, Mode uint32
	Rdev           uint32
	SymlinkTarget  string
	Xattrs         []Xattr // canonical order (CanonicalXattrs)
}

// IsSymlink reports whether fi describes a symlink.
func (fi FileInfo) IsSymlink() bool { return fi.Mode&ModeTypeMask == ModeSymlink }

// IsRegular reports whether fi describes a regular file.
func (fi FileInfo) IsRegular() bool { return fi.Mode&ModeTypeMask == ModeReg }

// Validate checks what libostree checks of a content object's header.
func (fi FileInfo) Validate() error {
	switch fi.Mode & ModeTypeMask {
	case ModeReg:
		if fi.SymlinkTarget != "" {
			return fmt.Errorf("regular file with symlink target: %w", errdefs.ErrInvalid)
		}
	case ModeSymlink:
		if fi.SymlinkTarget == "" {
			return fmt.Errorf("symlink with empty target: %w", errdefs.ErrInvalid)
		}
	default:
		return fmt.Errorf("mode %#o is not a regular file or symlink: %w", fi.Mode, errdefs.ErrInvalid)
	}
	if fi.Mode&^(ModeTypeMask|ModePermMask) != 0 {
		return fmt.Errorf("mode %#o has unknown bits: %w", fi.Mode, errdefs.ErrInvalid)
	}
	if fi.Rdev != 0 {
		return fmt.Errorf("rdev %d is not zero: %w", fi.Rdev, errdefs.ErrInvalid)
	}
	return nil
}

var (
	fileHeaderType    = gvariant.MustType("(uuuusa(ayay))")
	archiveHeaderType = gvariant.MustType("(tuuuusa(ayay))")
	fileMetaType      = gvariant.MustType("(uuua(ayay))")
)

func be32(x uint32) uint32 { return bits.ReverseBytes32(x) }
func be64(x uint64) uint64 { return bits.ReverseBytes64(x) }

// frame prefixes a serialized header with BE32(len) and 4 zero bytes.
func frame(h []byte) []byte {
	out := make([]byte, 8, 8+len(h))
	binary.BigEndian.PutUint32(out, uint32(len(h)))
	return append(out, h...)
}

// FileHeader returns the prefix of the content stream (docs/formats/objects.md); the
// content checksum is sha256(FileHeader(fi) || payload).
func FileHeader(fi FileInfo) []byte {
	h, err := gvariant.Marshal(fileHeaderType, gvariant.Tuple{
		be32(fi.UID), be32(fi.GID), be32(fi.Mode), be32(fi.Rdev), fi.SymlinkTarget, xattrsValue(fi.Xattrs),
	})
	if err != nil {
		panic("internal error: file header: " + err.Error())
	}
	return frame(h)
}

// ArchiveHeader returns the prefix of an archive-mode .filez object
// (docs/formats/objects.md); a raw-deflate stream of the payload follows it (none for symlinks).
func ArchiveHeader(fi FileInfo, size uint64) []byte {
	h, err := gvariant.Marshal(archiveHeaderType, gvariant.Tuple{
		be64(size), be32(fi.UID), be32(fi.GID), be32(fi.Mode), be32(fi.Rdev), fi.SymlinkTarget, xattrsValue(fi.Xattrs),
	})
	if err != nil {
		panic("internal error: archive header: " + err.Error())
	}
	return frame(h)
}

// MaxHeaderSize bounds the framed header length a reader accepts.
const MaxHeaderSize = 1 << 20

// ReadFramedHeader reads BE32 length, the 4 padding bytes and the header
// bytes from r.
func ReadFramedHeader(r io.Reader) ([]byte, error) {
	var pre [8]byte
	if _, err := io.ReadFull(r, pre[:]); err != nil {
		return nil, fmt.Errorf("reading object header: %w", truncated(err))
	}
	n := binary.BigEndian.Uint32(pre[:4])
	if n == 0 || n > MaxHeaderSize {
		return nil, fmt.Errorf("object header length %d: %w", n, errdefs.ErrCorrupt)
	}
	h := make([]byte, n)
	if _, err := io.ReadFull(r, h); err != nil {
		return nil, fmt.Errorf("reading object header: %w", truncated(err))
	}
	return h, nil
}

func truncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return fmt.Errorf("truncated: %w", errdefs.ErrCorrupt)
	}
	return err
}

// ParseFileHeader decodes the (unframed) header of a content stream.
func ParseFileHeader(h []byte) (FileInfo, error) {
	v, err := gvariant.Unmarshal(fileHeaderType, h)
	if err != nil {
		return FileInfo{}, fmt.Errorf("file header: %w", errdefs.ErrCorrupt)
	}
	tu := v.(gvariant.Tuple)
	fi := FileInfo{UID: be32(tu[0].(uint32)), GID: be32(tu[1].(uint32)), Mode: be32(tu[2].(uint32)),
		Rdev: be32(tu[3].(uint32)), SymlinkTarget: tu[4].(string)}
	if fi.Xattrs, err = parseXattrs(tu[5]); err != nil {
		return FileInfo{}, err
	}
	return fi, fi.Validate()
}

// ParseArchiveHeader decodes the (unframed) header of a .filez object and
// returns the file's metadata and uncompressed size.
func ParseArchiveHeader(h []byte) (FileInfo, uint64, error) {
	v, err := gvariant.Unmarshal(archiveHeaderType, h)
	if err != nil {
		return FileInfo{}, 0, fmt.Errorf("archive file header: %w", errdefs.ErrCorrupt)
	}
	tu := v.(gvariant.Tuple)
	fi := FileInfo{UID: be32(tu[1].(uint32)), GID: be32(tu[2].(uint32)), Mode: be32(tu[3].(uint32)),
		Rdev: be32(tu[4].(uint32)), SymlinkTarget: tu[5].(string)}
	if fi.Xattrs, err = parseXattrs(tu[6]); err != nil {
		return FileInfo{}, 0, err
	}
	return fi, be64(tu[0].(uint64)), fi.Validate()
}

// FileMeta serializes the bare-user `user.ostreemeta` xattr value (docs/formats/objects.md).
func FileMeta(fi FileInfo) []byte {
	return DirMeta{UID: fi.UID, GID: fi.GID, Mode: fi.Mode, Xattrs: fi.Xattrs}.Marshal()
}

// ParseFileMeta decodes a `user.ostreemeta` value.
func ParseFileMeta(b []byte) (FileInfo, error) {
	v, err := gvariant.Unmarshal(fileMetaType, b)
	if err != nil {
		return FileInfo{}, fmt.Errorf("user.ostreemeta: %w", errdefs.ErrCorrupt)
	}
	tu := v.(gvariant.Tuple)
	fi := FileInfo{UID: be32(tu[0].(uint32)), GID: be32(tu[1].(uint32)), Mode: be32(tu[2].(uint32))}
	fi.Xattrs, err = parseXattrs(tu[3])
	return fi, err
}

// ContentChecksum hashes a content object's stream.
func ContentChecksum(fi FileInfo, payload io.Reader) (Checksum, error) {
	h := sha256.New()
	h.Write(FileHeader(fi))
	if payload != nil {
		if _, err := io.Copy(h, payload); err != nil {
			return Checksum{}, err
		}
	}
	var c Checksum
	h.Sum(c[:0])
	return c, nil
}

// CanonicalizeForBareUserOnly applies libostree's canonical permissions
// (docs/formats/objects.md): uid/gid 0, no xattrs, regular files and directories masked
// to 0755 plus their type bits.
func CanonicalizeForBareUserOnly(mode uint32) uint32 {
	switch mode & ModeTypeMask {
	case ModeReg:
		return ModeReg | mode&0o755
	case ModeDir:
		return ModeDir | mode&0o755
	}
	return mode
}

// ValidateFilename checks a dirtree entry name (ot_util_filename_validate).
func ValidateFilename(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("invalid file name %q: %w", name, errdefs.ErrInvalid)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("file name %q contains '/' or NUL: %w", name, errdefs.ErrInvalid)
	}
	return nil
}
