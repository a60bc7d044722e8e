package sysext

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/osrelease"
)

// Where a node keeps extensions, relative to its /var (docs/sysext.md,
// "On the node"). AddedDir is systemd-sysext's own directory for images;
// FollowedDir is strata's store of per-OS-version images
// (NAME/VERSION_ID/NAME.raw), which systemd-sysext does not read: Link
// makes the booted OS's ones visible in a runtime directory.
const (
	AddedDir    = "lib/extensions"
	FollowedDir = "lib/strata/extensions"
)

// releaseSuffix names the file beside a followed image that holds its
// extension-release, read when Inspect checked the image, so that the
// boot-time Link need not parse the image again; sigSuffix the detached
// signature it was fetched with.
const (
	releaseSuffix = ".release"
	sigSuffix     = ".sig"
)

// Store is the extensions of one stateroot: Var is its /var ("/var" on
// a booted node, SYSROOT/ostree/deploy/OSNAME/var from outside).
type Store struct {
	Var string
}

func (s Store) addedPath(name string) string {
	return filepath.Join(s.Var, AddedDir, name+".raw")
}

func (s Store) followedDir(name string) string {
	return filepath.Join(s.Var, FollowedDir, name)
}

// FollowedPath is where the image of name for an OS whose VERSION_ID is
// version is kept.
func (s Store) FollowedPath(name, version string) string {
	return filepath.Join(s.followedDir(name), version, name+".raw")
}

// AddOptions tune Add.
type AddOptions struct {
	// SHA256, if set, is the hex digest the image must have.
	SHA256 string
	// Host is the os-release of the deployment the image is for; an
	// image that does not Match it is refused. Arch is the kernel's
	// architecture (Architecture()).
	Host osrelease.Values
	Arch string
}

// Add places the image read from r under the name name in the
// directory systemd-sysext reads (AddedDir): it is copied into a private
// temporary file there (at most MaxImageSize bytes), checked with
// Inspect and Match, and only then made readable and renamed to
// NAME.raw, replacing an image of that name. Nothing is placed when a
// check fails.
func (s Store) Add(ctx context.Context, r io.Reader, name string, opts AddOptions) (Image, error) {
	if err := CheckName(name); err != nil {
		return Image{}, err
	}
	dir := filepath.Join(s.Var, AddedDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Image{}, fmt.Errorf("adding extension %s: %w", name, err)
	}
	img, err := place(ctx, r, dir, name, func(tmp string, digest []byte) (Image, error) {
		if opts.SHA256 != "" && !strings.EqualFold(opts.SHA256, hex.EncodeToString(digest)) {
			return Image{}, fmt.Errorf("sha256 %x, want %s: %w", digest, opts.SHA256, errdefs.ErrCorrupt)
		}
		img, err := inspectAs(tmp, name)
		if err != nil {
			return Image{}, err
		}
		if err := Match(img.Release, opts.Host, opts.Arch); err != nil {
			return Image{}, err
		}
		return img, nil
	}, s.addedPath(name))
	if err != nil {
		return Image{}, fmt.Errorf("adding extension %s: %w", name, err)
	}
	return img, nil
}

// place copies r into a 0600 temporary file in dir, hashing it, runs
// check on it, and renames it to dest (0644) when check passes. It
// removes the temporary file otherwise.
func place(ctx context.Context, r io.Reader, dir, name string, check func(tmp string, digest []byte) (Image, error), dest string) (Image, error) {
	f, err := os.CreateTemp(dir, "."+name+".raw-*")
	if err != nil {
		return Image{}, fsutil.TempCause(err)
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(ctxReader{ctx, r}, MaxImageSize+1))
	if err != nil {
		return Image{}, fmt.Errorf("copying the image: %w", err)
	}
	if n > MaxImageSize {
		return Image{}, fmt.Errorf("image larger than %d bytes: %w", int64(MaxImageSize), ErrImage)
	}
	if err := f.Sync(); err != nil {
		return Image{}, fsutil.TempCause(err)
	}
	img, err := check(tmp, h.Sum(nil))
	if err != nil {
		return Image{}, err
	}
	if err := f.Chmod(0o644); err != nil {
		return Image{}, fsutil.TempCause(err)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return Image{}, err
	}
	if err := os.Rename(tmp, dest); err != nil {
		return Image{}, fsutil.TempCause(err)
	}
	return img, fsutil.FsyncDir(filepath.Dir(dest))
}

// ctxReader stops a copy when its context ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Remove deletes the extension name: its image in AddedDir and every
// version of it in FollowedDir (the node stops following it). It takes
// effect at the next merge (reboot or systemd-sysext refresh). An unknown
// name is errdefs.ErrNotFound.
func (s Store) Remove(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	found := false
	if err := os.Remove(s.addedPath(name)); err == nil {
		found = true
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing extension %s: %w", name, err)
	}
	if _, err := os.Lstat(s.followedDir(name)); err == nil {
		found = true
		if err := fsutil.RemoveTree(s.followedDir(name)); err != nil {
			return fmt.Errorf("removing extension %s: %w", name, err)
		}
	}
	if !found {
		return fmt.Errorf("extension %s: not added or followed: %w", name, errdefs.ErrNotFound)
	}
	return fsutil.FsyncDir(filepath.Join(s.Var, AddedDir))
}

// Followed returns the names of the extensions the node follows, sorted.
func (s Store) Followed() ([]string, error) {
	return listNames(filepath.Join(s.Var, FollowedDir), func(d fs.DirEntry) (string, bool) {
		return d.Name(), d.IsDir() && CheckName(d.Name()) == nil
	})
}

// added returns the names of the images in AddedDir, sorted.
func (s Store) added() ([]string, error) {
	return listNames(filepath.Join(s.Var, AddedDir), func(d fs.DirEntry) (string, bool) {
		n, ok := strings.CutSuffix(d.Name(), ".raw")
		return n, ok && !d.IsDir() && CheckName(n) == nil
	})
}

// Versions returns the OS versions name has an image for, sorted.
func (s Store) Versions(name string) ([]string, error) {
	return listNames(s.followedDir(name), func(d fs.DirEntry) (string, bool) {
		return d.Name(), d.IsDir() && CheckVersion("VERSION_ID", d.Name()) == nil
	})
}

func listNames(dir string, keep func(fs.DirEntry) (string, bool)) ([]string, error) {
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing extensions: %w", err)
	}
	var out []string
	for _, d := range des {
		if n, ok := keep(d); ok {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Follow starts following name: an empty entry in FollowedDir, which the
// upgrade preparer fills per OS version.
func (s Store) Follow(name string) error {
	if err := CheckName(name); err != nil {
		return err
	}
	if err := os.MkdirAll(s.followedDir(name), 0o755); err != nil {
		return fmt.Errorf("following extension %s: %w", name, err)
	}
	return nil
}

// readRelease reads the extension-release recorded beside a followed
// image.
func readRelease(image string) (osrelease.Values, error) {
	data, err := os.ReadFile(image + releaseSuffix)
	if err != nil {
		return nil, err
	}
	return osrelease.Parse(data)
}

// Prune removes the followed images of OS versions not in keep (the
// versions of the deployments still on the node), so that every
// deployment keeps its own and nothing else accumulates.
func (s Store) Prune(keep map[string]bool) error {
	names, err := s.Followed()
	if err != nil {
		return err
	}
	for _, n := range names {
		vs, err := s.Versions(n)
		if err != nil {
			return err
		}
		for _, v := range vs {
			if keep[v] {
				continue
			}
			if err := fsutil.RemoveTree(filepath.Join(s.followedDir(n), v)); err != nil {
				return fmt.Errorf("pruning extension %s for VERSION_ID %s: %w", n, v, err)
			}
		}
	}
	return nil
}
