package repo

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// TarSource commits the tree in a tar stream (plain, gzip or zstd,
// detected by magic), like `ostree commit --tree=tar=FILE`. Regular files,
// symlinks, hardlinks and directories are taken with the uid, gid and
// permission bits of their headers and their SCHILY.xattr.* PAX records.
//
// Where libostree 2022.7 (ostree-repo-libarchive.c) behaves as follows,
// strata does the same, so the checksums match:
//   - A "." or "./" entry gives the root directory its metadata; a later
//     entry for the same directory replaces the metadata and keeps the
//     contents; a later file replaces an earlier one.
//   - Hardlinks are resolved when the whole stream has been read, against
//     the final tree, and take the target's content and metadata; a
//     hardlink may point forward. A hardlink to a directory is refused.
//   - A symlink keeps the permission bits of its header.
//   - A file may not replace a directory.
//   - Device nodes and FIFOs are refused ("Unsupported file type").
//   - A name that is not UTF-8 is refused.
//
// Where libostree refuses or is inconsistent, strata chooses:
//   - A missing root entry or parent directory is created implicitly,
//     0755 root:root, like tar(1) extracting; libostree fails ("Can't
//     commit an empty tree", "No such file or directory").
//   - A directory replaces a file of the same name (libostree aborts).
//   - Absolute names, ".." components and names that go through a
//     symlink of the archive are refused (errdefs.ErrInvalid); libostree
//     strips a leading "/" and refuses the others.
//   - A name component longer than 255 bytes is refused: no Linux
//     filesystem can check it out (libostree accepts it).
//   - Xattrs are canonical (sorted, empty values dropped, docs/formats/objects.md), as
//     for a directory commit: libostree keeps libarchive's order and empty
//     values here, so a tar with xattrs gets a different checksum there
//     than the same tree committed from a directory.
func TarSource(r io.Reader) TreeSource { return tarSource{r: r} }

type tarSource struct{ r io.Reader }

// Stream magics.
var (
	magicGzip  = []byte{0x1f, 0x8b}
	magicZstd  = []byte{0x28, 0xb5, 0x2f, 0xfd}
	magicXz    = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	magicBzip2 = []byte("BZh")
)

// decompress wraps r according to its magic.
func decompress(r io.Reader) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	head, _ := br.Peek(6)
	switch {
	case bytes.HasPrefix(head, magicGzip):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("reading gzip header: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case bytes.HasPrefix(head, magicZstd):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true), zstd.WithDecoderMaxWindow(64<<20))
		if err != nil {
			return nil, nil, fmt.Errorf("reading zstd stream: %w", err)
		}
		return zr, zr.Close, nil
	case bytes.HasPrefix(head, magicXz):
		return nil, nil, fmt.Errorf("xz-compressed tar streams are not supported (decompress first, or use gzip or zstd): %w", errdefs.ErrUnsupported)
	case bytes.HasPrefix(head, magicBzip2):
		return nil, nil, fmt.Errorf("bzip2-compressed tar streams are not supported (decompress first, or use gzip or zstd): %w", errdefs.ErrUnsupported)
	}
	return br, func() {}, nil
}

func (s tarSource) build(ctx context.Context, b *treeBuilder) error {
	r, done, err := decompress(s.r)
	if err != nil {
		return err
	}
	defer done()
	tb := tarBuilder{b: b, stream: make([]byte, 256<<10)}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar stream: %w", err)
		}
		if err := tb.entry(hdr, tr); err != nil {
			return fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
	if b.root == nil {
		b.root = newMdir(tb.implicitDir())
	}
	return nil
}

type tarBuilder struct {
	b      *treeBuilder
	stream []byte
}

// implicitDir is the metadata of a directory the stream does not list.
func (tb *tarBuilder) implicitDir() ostree.DirMeta {
	return tb.b.dirMeta(0, 0, ostree.ModeDir|0o755, nil)
}

// tarPath splits an entry name into validated components; the root is
// an empty list.
func tarPath(name string) ([]string, error) {
	if strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("absolute path: %w", errdefs.ErrInvalid)
	}
	var parts []string
	for _, c := range strings.Split(name, "/") {
		switch c {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("path climbs out with \"..\": %w", errdefs.ErrInvalid)
		}
		if err := checkName(c); err != nil {
			return nil, err
		}
		parts = append(parts, c)
	}
	return parts, nil
}

// parent returns the directory that holds parts' last component,
// creating missing directories implicitly.
func (tb *tarBuilder) parent(parts []string) (*mdir, error) {
	if tb.b.root == nil {
		tb.b.root = newMdir(tb.implicitDir())
	}
	d := tb.b.root
	for i, name := range parts[:len(parts)-1] {
		n := d.children[name]
		switch {
		case n == nil:
			n = &mnode{dir: newMdir(tb.implicitDir())}
			d.children[name] = n
		case n.dir == nil && n.file.symlink:
			return nil, fmt.Errorf("path goes through symlink %s: %w", strings.Join(parts[:i+1], "/"), errdefs.ErrInvalid)
		case n.dir == nil:
			return nil, fmt.Errorf("%s is not a directory: %w", strings.Join(parts[:i+1], "/"), errdefs.ErrInvalid)
		}
		d = n.dir
	}
	return d, nil
}

func (tb *tarBuilder) entry(hdr *tar.Header, r io.Reader) error {
	b := tb.b
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("not a regular file or symlink: %w", errdefs.ErrInvalid)
	case tar.TypeReg, tar.TypeSymlink, tar.TypeLink, tar.TypeDir, tar.TypeGNUSparse:
	default:
		return fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, errdefs.ErrInvalid)
	}
	parts, err := tarPath(hdr.Name)
	if err != nil {
		return err
	}
	fi, err := tarFileInfo(hdr)
	if err != nil {
		return err
	}
	if hdr.Typeflag == tar.TypeDir {
		meta := b.dirMeta(fi.UID, fi.GID, ostree.ModeDir|fi.Mode, fi.Xattrs)
		if len(parts) == 0 {
			if b.root == nil {
				b.root = newMdir(meta)
			} else {
				b.root.meta = meta
			}
			return nil
		}
		d, err := tb.parent(parts)
		if err != nil {
			return err
		}
		name := parts[len(parts)-1]
		if n := d.children[name]; n != nil && n.dir != nil {
			n.dir.meta = meta
		} else {
			d.children[name] = &mnode{dir: newMdir(meta)}
		}
		return nil
	}
	if len(parts) == 0 {
		return fmt.Errorf("a file cannot be the root directory: %w", errdefs.ErrInvalid)
	}
	d, err := tb.parent(parts)
	if err != nil {
		return err
	}
	name := parts[len(parts)-1]
	if n := d.children[name]; n != nil && n.dir != nil {
		return fmt.Errorf("cannot replace directory %s with a file: %w", strings.Join(parts, "/"), errdefs.ErrInvalid)
	}
	where := "/" + strings.Join(parts, "/")
	switch hdr.Typeflag {
	case tar.TypeLink:
		target, err := tarPath(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink target %q: %w", hdr.Linkname, err)
		}
		if len(target) == 0 {
			return fmt.Errorf("hardlink to the root directory: %w", errdefs.ErrInvalid)
		}
		d.children[name] = &mnode{file: &mfile{link: strings.Join(target, "/")}}
		b.files.Add(1)
		return nil
	case tar.TypeSymlink:
		if hdr.Linkname == "" || !utf8.ValidString(hdr.Linkname) {
			return fmt.Errorf("symlink target %q is empty or not UTF-8: %w", hdr.Linkname, errdefs.ErrInvalid)
		}
		fi.Mode |= ostree.ModeSymlink
		fi.SymlinkTarget = hdr.Linkname
		fi = b.fileInfo(fi)
		n := &mfile{symlink: true}
		d.children[name] = &mnode{file: n}
		return b.submit(contentJob{node: n, where: where, fi: fi})
	}
	fi.Mode |= ostree.ModeReg
	fi = b.fileInfo(fi)
	if err := checkFileInfo(fi, where); err != nil {
		return err
	}
	n := &mfile{}
	d.children[name] = &mnode{file: n}
	if hdr.Size <= smallFileMax {
		buf, err := b.getBuf(int(hdr.Size))
		if err != nil {
			return err
		}
		if _, err := io.ReadFull(r, buf); err != nil {
			b.putBuf(buf)
			return fmt.Errorf("reading payload: %w", err)
		}
		return b.submit(contentJob{node: n, where: where, fi: fi, data: buf})
	}
	return tb.spool(n, where, fi, hdr.Size, r)
}

// spool copies a large payload to a temp file in the staging directory,
// hashing it on the way, so that the stream can go on while a worker
// stores it.
func (tb *tarBuilder) spool(n *mfile, where string, fi ostree.FileInfo, size int64, r io.Reader) error {
	b := tb.b
	f, err := b.t.createTemp()
	if err != nil {
		return err
	}
	h := sha256.New()
	h.Write(ostree.FileHeader(fi))
	if err := copyHashed(f, r, size, h, tb.stream); err != nil {
		f.discard()
		return fmt.Errorf("spooling payload: %w", err)
	}
	var c ostree.Checksum
	h.Sum(c[:0])
	ok, err := b.claim(c)
	if !ok || err != nil {
		f.discard()
		n.sum = c
		b.files.Add(1)
		b.bytes.Add(size)
		return err
	}
	return b.submit(contentJob{node: n, where: where, fi: fi, spool: f, sum: c, size: size})
}

// tarFileInfo takes owner, permission bits and xattrs from a header.
func tarFileInfo(hdr *tar.Header) (ostree.FileInfo, error) {
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > 1<<32-1 || int64(hdr.Gid) > 1<<32-1 {
		return ostree.FileInfo{}, fmt.Errorf("uid %d or gid %d out of range: %w", hdr.Uid, hdr.Gid, errdefs.ErrInvalid)
	}
	fi := ostree.FileInfo{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: uint32(hdr.Mode) & ostree.ModePermMask}
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			fi.Xattrs = append(fi.Xattrs, ostree.Xattr{Name: name, Value: []byte(v)})
		}
	}
	fi.Xattrs = ostree.CanonicalXattrs(fi.Xattrs)
	return fi, nil
}
