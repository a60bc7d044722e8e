package repo

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	pathpkg "path"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// LsEntry is one line of `repo ls`.
type LsEntry struct {
	Path string
	Kind EntryKind
	// Mode includes the type bits (S_IFDIR, S_IFREG, S_IFLNK).
	Mode          uint32
	UID, GID      uint32
	Size          int64 // payload size of regular files; 0 otherwise, as ostree ls prints
	SymlinkTarget string
	Checksum      ostree.Checksum // content object, or dirtree for directories
	Meta          ostree.Checksum // dirmeta, directories only
	Xattrs        []ostree.Xattr
}

// Ls lists path in the tree of rev like `ostree ls`: the entry itself,
// then, for a directory, its entries (files, then directories), and with
// recursive everything below, depth first. Directory metadata is verified;
// file metadata comes from the content objects' headers.
func Ls(ctx context.Context, r *Repo, rev, path string, recursive bool) ([]LsEntry, error) {
	c, err := r.ResolveRev(rev)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", rev, err)
	}
	start, err := Lookup(r, c, path)
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", rev, err)
	}
	var out []LsEntry
	err = Walk(ctx, r, start, func(e *WalkEntry, err error) error {
		if err != nil {
			return err
		}
		le := LsEntry{Path: e.Path, Kind: e.Kind, Checksum: e.Checksum, Meta: e.Meta}
		if e.Kind == EntryDir {
			m, err := e.DirMeta()
			if err != nil {
				return fmt.Errorf("directory %s: %w", e.Path, err)
			}
			le.Mode, le.UID, le.GID, le.Xattrs = m.Mode, m.UID, m.GID, m.Xattrs
		} else {
			fi, size, err := e.FileInfo()
			if err != nil {
				return fmt.Errorf("file %s: %w", e.Path, err)
			}
			le.Mode, le.UID, le.GID, le.Xattrs, le.SymlinkTarget = fi.Mode, fi.UID, fi.GID, fi.Xattrs, fi.SymlinkTarget
			if fi.IsRegular() {
				le.Size = size
			}
		}
		out = append(out, le)
		if e.Kind == EntryDir && e != start && !recursive {
			return fs.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %s: %w", rev, err)
	}
	return out, nil
}

// Cat writes the content of the regular file at path in the tree of rev
// to w, verifying the object's checksum as it goes: corruption is
// reported (errdefs.ErrCorrupt) after the bytes were written. A symlink
// is followed, as ostree cat does, but never out of the commit's tree;
// a directory is errdefs.ErrInvalid.
func Cat(ctx context.Context, r *Repo, rev, path string, w io.Writer) error {
	c, err := r.ResolveRev(rev)
	if err != nil {
		return fmt.Errorf("reading %s: %w", rev, err)
	}
	var (
		e  *WalkEntry
		ct *Content
	)
	for hops := 0; ; hops++ {
		if e, err = Lookup(r, c, path); err != nil {
			return fmt.Errorf("reading %s: %w", rev, err)
		}
		if e.Kind == EntryDir {
			return fmt.Errorf("reading %s in %s: is a directory: %w", e.Path, rev, errdefs.ErrInvalid)
		}
		if ct, err = r.OpenContent(e.Checksum); err != nil {
			return fmt.Errorf("reading %s in %s: %w", e.Path, rev, err)
		}
		if !ct.Info.IsSymlink() {
			break
		}
		ct.Close()
		// As ostree cat: follow the link, inside the commit's tree
		// (an absolute target starts at its root; ".." stops there).
		if hops == maxSymlinkHops {
			return fmt.Errorf("reading %s in %s: more than %d symbolic links: %w", path, rev, maxSymlinkHops, errdefs.ErrInvalid)
		}
		target := ct.Info.SymlinkTarget
		if !strings.HasPrefix(target, "/") {
			target = pathpkg.Join(pathpkg.Dir("/"+strings.TrimPrefix(e.Path, "/")), target)
		}
		path = pathpkg.Clean("/" + target)
	}
	defer ct.Close()
	h := sha256.New()
	h.Write(ostree.FileHeader(ct.Info))
	if _, err := io.Copy(io.MultiWriter(w, h), catReader{ctx, ct}); err != nil {
		return fmt.Errorf("reading %s in %s: %w", e.Path, rev, err)
	}
	if err := coCheckSum(h, e.Checksum); err != nil {
		return fmt.Errorf("reading %s in %s: %w", e.Path, rev, err)
	}
	return nil
}

// maxSymlinkHops bounds the links Cat follows, as Linux's 40.
const maxSymlinkHops = 40

// catReader hides everything but Read (so io.Copy does not hand the
// object file to sendfile, past the hash) and stops on cancellation.
type catReader struct {
	ctx context.Context
	r   io.Reader
}

func (r catReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
