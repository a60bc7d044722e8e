package sysext

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/squashfs"
	erofs "github.com/erofs/go-erofs"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
)

// Format is an image's filesystem.
type Format string

// The formats strata builds and reads: raw filesystem images without a
// partition table, which systemd-sysext mounts through a loop device.
const (
	FormatEROFS    Format = "erofs"
	FormatSquashFS Format = "squashfs"
)

// Limits on what an image may hold. They bound the work and memory that
// a hostile image can cost before it is refused.
const (
	// MaxImageSize bounds an image file, fetched or added.
	MaxImageSize = 4 << 30
	// MaxEntries bounds the files, directories and links of an image
	// (Debian 12's whole /usr has about 130,000).
	MaxEntries = 1 << 18
	// maxDepth bounds directory nesting.
	maxDepth = 64
)

// Image is what Inspect found in a valid extension image.
type Image struct {
	Name    string           // the extension's name: the file name minus .raw
	Format  Format           // its filesystem
	Release osrelease.Values // its extension-release file
	Entries int              // files, directories and links below the root
	Size    int64            // bytes of the image file
}

// ErrImage is wrapped by Inspect's errors about the image's content (not
// about reading the file): the image is not an extension strata accepts.
// It is also errdefs.ErrInvalid.
var ErrImage = fmt.Errorf("invalid extension image: %w", errdefs.ErrInvalid)

// Inspect opens the image file at p, whose name must be NAME.raw, and
// checks that it is an extension strata accepts (docs/sysext.md,
// "Content rules"), without mounting it: it parses the filesystem (EROFS
// or squashfs, told by its magic) in process and walks every entry.
//
//   - every entry lies under /usr or /opt (systemd-sysext merges nothing
//     else, so anything else is a mistake or a smuggled file);
//   - no /usr/lib/os-release (it would replace the host's);
//   - only regular files, directories and symbolic links; no device,
//     FIFO, socket or overlay whiteout, and nothing world-writable
//     without the sticky bit;
//   - usr/lib/extension-release.d/extension-release.NAME is a regular
//     file that parses, with an ID; VERSION_ID and SYSEXT_LEVEL, if set,
//     are well formed.
//
// A corrupt filesystem is errdefs.ErrCorrupt; a rule broken is ErrImage
// naming the path. The parsers read hostile bytes, so a panic inside
// them is turned into ErrCorrupt.
func Inspect(p string) (img Image, err error) {
	name, ok := strings.CutSuffix(path.Base(p), ".raw")
	if !ok {
		return Image{}, fmt.Errorf("extension image %s: the file name must end in .raw (systemd-sysext reads only those): %w", p, errdefs.ErrInvalid)
	}
	if err := CheckName(name); err != nil {
		return Image{}, fmt.Errorf("extension image %s: %w", p, err)
	}
	f, err := os.Open(p)
	if err != nil {
		return Image{}, fmt.Errorf("opening extension image: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return Image{}, fmt.Errorf("opening extension image: %w", err)
	}
	if !st.Mode().IsRegular() {
		return Image{}, fmt.Errorf("extension image %s: not a regular file: %w", p, errdefs.ErrInvalid)
	}
	if st.Size() > MaxImageSize {
		return Image{}, fmt.Errorf("extension image %s: %d bytes, more than %d: %w", p, st.Size(), int64(MaxImageSize), ErrImage)
	}
	img, err = inspect(f, st.Size(), name)
	if err != nil {
		return Image{}, fmt.Errorf("extension image %s: %w", p, err)
	}
	img.Size = st.Size()
	return img, nil
}

// inspect checks the image in f (size bytes) as Inspect describes.
func inspect(f *os.File, size int64, name string) (img Image, err error) {
	defer func() {
		if r := recover(); r != nil {
			img, err = Image{}, fmt.Errorf("parsing the filesystem: %v: %w", r, errdefs.ErrCorrupt)
		}
	}()
	format, err := detect(f)
	if err != nil {
		return Image{}, err
	}
	var fsys fs.FS
	switch format {
	case FormatEROFS:
		if fsys, err = erofs.Open(f); err != nil {
			return Image{}, fmt.Errorf("reading EROFS: %v: %w", err, errdefs.ErrCorrupt)
		}
	case FormatSquashFS:
		sq, err := squashfs.Read(file.New(f, true), size, 0, 0)
		if err != nil {
			return Image{}, fmt.Errorf("reading squashfs: %v: %w", err, errdefs.ErrCorrupt)
		}
		fsys = squashFS{sq}
	}
	img = Image{Name: name, Format: format}
	if img.Entries, err = checkTree(fsys); err != nil {
		return Image{}, err
	}
	rel := ReleasePath(name)
	fi, err := fs.Stat(fsys, rel)
	if errors.Is(err, fs.ErrNotExist) {
		return Image{}, fmt.Errorf("no /%s (systemd-sysext refuses an image without it): %w", rel, ErrImage)
	} else if err != nil {
		return Image{}, fmt.Errorf("reading /%s: %v: %w", rel, err, errdefs.ErrCorrupt)
	}
	if !fi.Mode().IsRegular() || fi.Size() > osrelease.MaxSize {
		return Image{}, fmt.Errorf("/%s: not a regular file of at most %d bytes: %w", rel, osrelease.MaxSize, ErrImage)
	}
	data, err := readBounded(fsys, rel, osrelease.MaxSize)
	if err != nil {
		return Image{}, fmt.Errorf("reading /%s: %v: %w", rel, err, errdefs.ErrCorrupt)
	}
	if img.Release, err = osrelease.Parse(data); err != nil {
		return Image{}, fmt.Errorf("/%s: %w", rel, err)
	}
	if err := checkRelease(img.Release); err != nil {
		return Image{}, fmt.Errorf("/%s: %w", rel, err)
	}
	return img, nil
}

// checkRelease checks the fields strata relies on.
func checkRelease(v osrelease.Values) error {
	if v["ID"] == "" {
		return fmt.Errorf("no ID: %w", ErrImage)
	}
	for _, k := range []string{"VERSION_ID", "SYSEXT_LEVEL"} {
		if s, ok := v[k]; ok && s != "" {
			if err := CheckVersion(k, s); err != nil {
				return err
			}
		}
	}
	return nil
}

func readBounded(fsys fs.FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than %d bytes", limit)
	}
	return data, nil
}

// EROFS keeps its superblock 1024 bytes into the image; squashfs starts
// with its own.
const (
	erofsMagic    = 0xE0F5E1E2
	erofsOffset   = 1024
	squashfsMagic = "hsqs"
)

// detect tells the filesystem of an image by its magic number.
func detect(r io.ReaderAt) (Format, error) {
	var b [erofsOffset + 4]byte
	n, err := r.ReadAt(b[:], 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the superblock: %w", err)
	}
	switch {
	case n >= 4 && bytes.Equal(b[:4], []byte(squashfsMagic)):
		return FormatSquashFS, nil
	case n == len(b) && binary.LittleEndian.Uint32(b[erofsOffset:]) == erofsMagic:
		return FormatEROFS, nil
	}
	return "", fmt.Errorf("neither an EROFS nor a squashfs filesystem: %w", ErrImage)
}

// checkTree walks fsys and applies the content rules to every entry. It
// returns the number of entries below the root.
//
// A corrupt image can make a directory list itself or an ancestor, which
// would make the walk endless (found by FuzzInspect): a directory whose
// inode number was already walked is corrupt, and the entries and the
// depth are bounded for readers that do not expose inode numbers.
func checkTree(fsys fs.FS) (int, error) {
	n := 0
	seen := map[uint64]bool{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("walking the image at /%s: %v: %w", p, err, errdefs.ErrCorrupt)
		}
		fi, err := d.Info()
		if err != nil {
			return fmt.Errorf("reading /%s: %v: %w", p, err, errdefs.ErrCorrupt)
		}
		if ino, ok := fi.(interface{ Ino() uint64 }); ok && fi.IsDir() {
			if seen[ino.Ino()] {
				return fmt.Errorf("/%s: directory inode %d listed twice (a loop): %w", p, ino.Ino(), errdefs.ErrCorrupt)
			}
			seen[ino.Ino()] = true
		}
		if p == "." {
			return nil
		}
		if name := d.Name(); name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00") {
			return fmt.Errorf("/%s: entry name %q: %w", p, name, errdefs.ErrCorrupt)
		}
		if n++; n > MaxEntries {
			return fmt.Errorf("more than %d entries: %w", MaxEntries, ErrImage)
		}
		if strings.Count(p, "/") >= maxDepth {
			return fmt.Errorf("/%s: nested deeper than %d directories: %w", p, maxDepth, ErrImage)
		}
		return CheckEntry(p, fi.Mode())
	})
	return n, err
}

// CheckEntry applies the content rules to one entry of an extension: p is
// its path relative to the image root ("usr/bin/tool"), mode its type and
// permission bits. Build applies the same rules to a directory.
func CheckEntry(p string, mode fs.FileMode) error {
	top, _, _ := strings.Cut(p, "/")
	if top != "usr" && top != "opt" {
		return fmt.Errorf("/%s is outside /usr and /opt (systemd-sysext merges only those): %w", p, ErrImage)
	}
	if (top == "usr" || top == "opt") && p == top && !mode.IsDir() {
		return fmt.Errorf("/%s is not a directory: %w", p, ErrImage)
	}
	if p == "usr/lib/os-release" {
		return fmt.Errorf("/usr/lib/os-release would replace the host's; an extension carries /%s instead: %w", ReleaseDir+"/"+ReleasePrefix+"NAME", ErrImage)
	}
	switch t := mode.Type(); {
	case t == 0, t == fs.ModeDir, t == fs.ModeSymlink:
	default:
		return fmt.Errorf("/%s is a %s; an extension holds only files, directories and symbolic links: %w", p, typeName(t), ErrImage)
	}
	if mode.Type() != fs.ModeSymlink && mode.Perm()&0o002 != 0 && mode&fs.ModeSticky == 0 {
		return fmt.Errorf("/%s is world-writable: %w", p, ErrImage)
	}
	return nil
}

func typeName(t fs.FileMode) string {
	switch {
	case t&fs.ModeCharDevice != 0:
		return "character device (or overlay whiteout)"
	case t&fs.ModeDevice != 0:
		return "block device"
	case t&fs.ModeNamedPipe != 0:
		return "FIFO"
	case t&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

func sha256sum(b []byte) []byte {
	h := sha256.Sum256(b)
	return h[:]
}
