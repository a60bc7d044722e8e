package testutil

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// vectorsArchive holds the OSTree test vectors (docs/formats/vectors.md): repos, objects
// and transcripts made by /usr/bin/ostree 2022.7 (docs/formats/vectors.md).
const vectorsArchive = "testdata/ostree-vectors.tar.gz"

// Vectors extracts the OSTree test vectors into a fresh temporary directory (removed when the test
// ends) and returns the path of its top "ostree-vectors" directory. Each call gets its own copy, so
// tests may modify it. Modes (setuid included), symlinks, hardlinks, mtimes and user.* xattrs are
// restored — the repo-bare-user objects keep their user.ostreemeta — and, when running as root,
// owners too.
func Vectors(t testing.TB) string {
	t.Helper()
	archive := filepath.Join(RepoRoot(t), vectorsArchive)
	f, err := os.Open(archive)
	if err != nil {
		t.Fatalf("opening the test vectors: %v", err)
	}
	defer f.Close()
	dest := t.TempDir()
	if err := extractTarGz(f, dest); err != nil {
		t.Fatalf("extracting %s: %v", archive, err)
	}
	top := filepath.Join(dest, "ostree-vectors")
	if fi, err := os.Stat(top); err != nil || !fi.IsDir() {
		t.Fatalf("%s has no top directory ostree-vectors", archive)
	}
	return top
}

// extractTarGz extracts a gzip-compressed tar stream into the existing directory dest, like
// `tar --xattrs --xattrs-include='user.*' -xzf` would, plus owners when running as root.
func extractTarGz(r io.Reader, dest string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("reading gzip header: %w", err)
	}
	if err := extractTar(zr, dest); err != nil {
		return err
	}
	return zr.Close()
}

// extractTar extracts a tar stream into the existing directory dest. It refuses entry names and
// hardlink targets that are absolute, climb out with "..", or pass through a symlink that the
// archive itself created; symlink targets are stored as they are and never followed.
func extractTar(r io.Reader, dest string) error {
	x := extractor{dest: dest, asRoot: os.Geteuid() == 0, symlinks: map[string]bool{}}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar header: %w", err)
		}
		if err := x.entry(hdr, tr); err != nil {
			return fmt.Errorf("extracting %q: %w", hdr.Name, err)
		}
	}
	return x.finishDirs()
}

type extractor struct {
	dest   string
	asRoot bool
	// symlinks holds the archive-relative names of symlinks created so far: no later entry may
	// pass through one.
	symlinks map[string]bool
	// dirs get their final mode, owner and times after everything inside them is written, so
	// that read-only directories can still be filled and their mtimes stick.
	dirs []*tar.Header
}

// localName validates an archive name and returns it cleaned, relative to dest.
func (x *extractor) localName(name string) (string, error) {
	clean := filepath.Clean(strings.TrimSuffix(name, "/"))
	if !filepath.IsLocal(clean) {
		return "", fmt.Errorf("name %q leaves the destination", name)
	}
	for p := filepath.Dir(clean); p != "."; p = filepath.Dir(p) {
		if x.symlinks[p] {
			return "", fmt.Errorf("name %q passes through the symlink %q", name, p)
		}
	}
	return clean, nil
}

func (x *extractor) entry(hdr *tar.Header, r io.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil
	}
	name, err := x.localName(hdr.Name)
	if err != nil {
		return err
	}
	if name == "." {
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("only a directory may be named after the destination itself")
		}
	}
	path := filepath.Join(x.dest, name)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	// A later entry of the same name replaces the earlier one, as with tar(1); directories merge.
	if hdr.Typeflag != tar.TypeDir {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		delete(x.symlinks, name)
	}

	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := os.Mkdir(path, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if fi, err := os.Lstat(path); err != nil || !fi.IsDir() {
			return fmt.Errorf("%s exists and is not a directory", name)
		}
		if err := setXattrs(path, hdr); err != nil {
			return err
		}
		x.dirs = append(x.dirs, hdr)
		return nil

	case tar.TypeReg:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}

	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, path); err != nil {
			return err
		}
		x.symlinks[name] = true

	case tar.TypeLink:
		target, err := x.localName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hardlink target: %w", err)
		}
		// The target's metadata was restored when it was extracted; a hardlink shares it. Linux's
		// link(2) does not follow a symlink target: the link is a second name of the symlink.
		if err := os.Link(filepath.Join(x.dest, target), path); err != nil {
			return err
		}
		if x.symlinks[target] {
			x.symlinks[name] = true
		}
		return nil

	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	return x.setMeta(path, hdr)
}

// setMeta restores xattrs, owner, mode and times, in an order where each step survives the next:
// user.* xattrs need write permission, and chown clears setuid/setgid.
func (x *extractor) setMeta(path string, hdr *tar.Header) error {
	symlink := hdr.Typeflag == tar.TypeSymlink
	if !symlink { // Linux allows no user.* xattrs on symlinks
		if err := setXattrs(path, hdr); err != nil {
			return err
		}
	}
	if x.asRoot {
		if err := os.Lchown(path, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if !symlink { // a symlink's mode is always 0777 on Linux
		if err := unix.Chmod(path, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
	}
	return setTimes(path, hdr)
}

// finishDirs applies directory metadata deepest first, so that setting a parent's mtime comes after
// every change inside it.
func (x *extractor) finishDirs() error {
	slices.SortStableFunc(x.dirs, func(a, b *tar.Header) int {
		return strings.Count(filepath.Clean(b.Name), "/") - strings.Count(filepath.Clean(a.Name), "/")
	})
	for _, hdr := range x.dirs {
		name, err := x.localName(hdr.Name)
		if err != nil {
			return err
		}
		path := filepath.Join(x.dest, name)
		if x.asRoot {
			if err := os.Lchown(path, hdr.Uid, hdr.Gid); err != nil {
				return err
			}
		}
		if err := unix.Chmod(path, uint32(hdr.Mode&0o7777)); err != nil {
			return fmt.Errorf("chmod %s: %w", path, err)
		}
		if err := setTimes(path, hdr); err != nil {
			return err
		}
	}
	return nil
}

const paxXattr = "SCHILY.xattr."

func setXattrs(path string, hdr *tar.Header) error {
	keys := make([]string, 0, len(hdr.PAXRecords))
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, paxXattr+"user.") {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		attr := strings.TrimPrefix(k, paxXattr)
		if err := unix.Lsetxattr(path, attr, []byte(hdr.PAXRecords[k]), 0); err != nil {
			return fmt.Errorf("setting xattr %s on %s: %w", attr, path, err)
		}
	}
	return nil
}

func setTimes(path string, hdr *tar.Header) error {
	mtime := hdr.ModTime
	atime := hdr.AccessTime
	if atime.IsZero() {
		atime = mtime
	}
	ts := []unix.Timespec{timespec(atime), timespec(mtime)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, path, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("setting times of %s: %w", path, err)
	}
	return nil
}

func timespec(t time.Time) unix.Timespec {
	if t.IsZero() {
		return unix.Timespec{Sec: 0, Nsec: unix.UTIME_OMIT}
	}
	return unix.NsecToTimespec(t.UnixNano())
}
