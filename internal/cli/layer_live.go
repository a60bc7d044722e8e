package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/moby/sys/mountinfo"
	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysroot"
)

// layerLive is where `install --apply-live` keeps the top layer of the
// overlay it mounts on the running /usr, relative to the stateroot's /var
// (one directory per deployment applied; docs/layering.md).
const layerLive = "lib/strata/layer/live"

// applyLive makes what deployment next adds to the /usr of deployment
// running visible in the running system's /usr (root + "/usr"), without
// touching running's tree on disk, as rpm-ostree's apply-live does:
//
//   - next must have running's base (packages layered on the same OS,
//     not an update) and remove nothing from /usr;
//   - the files and directories of next's /usr that running lacks or has
//     otherwise (the packages' files, the dpkg database, what maintainer
//     scripts changed) are hardlinked from next's deployment into a
//     directory of the stateroot's /var;
//   - that directory is mounted read-only over /usr as the upper of two
//     overlayfs lower layers, the running /usr the lower one. An earlier
//     such overlay is detached first.
//
// Services are not started or restarted, /etc and /var are not changed
// (the packages' configuration files are in /usr/etc, and reach /etc by
// the /etc merge of the next boot); the reboot into next drops the overlay.
func applyLive(ctx context.Context, s *sysroot.Sysroot, running, next sysroot.Deployment, root string) (int, error) {
	rb, err := s.BaseCommit(running)
	if err != nil {
		return 0, err
	}
	nb, err := s.BaseCommit(next)
	if err != nil {
		return 0, err
	}
	if rb != nb {
		return 0, fmt.Errorf("the new deployment's base %s is not the running one's (%s): an update applies at the reboot only: %w", nb, rb, errdefs.ErrFailedPrecondition)
	}
	diff, err := repo.Diff(ctx, s.Repo(), running.Checksum.String(), next.Checksum.String())
	if err != nil {
		return 0, err
	}
	inUsr := func(p string) bool { return strings.HasPrefix(p, "/usr/") }
	var removed []string
	for _, p := range diff.Removed {
		if inUsr(p) {
			removed = append(removed, p)
		}
	}
	if len(removed) > 0 {
		return 0, fmt.Errorf("the new deployment removes %d paths of /usr (%s): only additions apply live; reboot: %w",
			len(removed), strings.Join(removed[:min(len(removed), 5)], ", "), errdefs.ErrFailedPrecondition)
	}
	src := filepath.Join(absPath(s.Path()), next.Path())
	liveDir := stateVar(s, next.OSName, layerLive)
	top := filepath.Join(liveDir, fmt.Sprintf("%s.%d", next.Checksum, next.Serial))
	if err := os.RemoveAll(top); err != nil {
		return 0, err
	}
	n := 0
	for _, p := range append(diff.Added, diff.Modified...) {
		if !inUsr(p) {
			continue
		}
		if err := linkLive(src, top, strings.TrimPrefix(p, "/usr")); err != nil {
			return 0, fmt.Errorf("applying live: %w", err)
		}
		n++
	}
	if n == 0 {
		return 0, os.RemoveAll(top)
	}
	usr := filepath.Join(root, "usr")
	if err := detachLive(usr, liveDir); err != nil {
		return 0, err
	}
	if err := mountLive(usr, top); err != nil {
		return 0, err
	}
	// Earlier layers no overlay uses any more.
	ents, _ := os.ReadDir(liveDir)
	for _, e := range ents {
		if e.Name() != filepath.Base(top) {
			os.RemoveAll(filepath.Join(liveDir, e.Name()))
		}
	}
	return n, nil
}

// linkLive puts rel (below /usr) of the deployment src into top: a
// directory with its owner and mode, a regular file as a hardlink of the
// deployment's (itself a hardlink of the repository's object), a symlink
// as a new one. The directories on the way get the owner and mode they
// have in src, as the overlay shows the upper layer's.
func linkLive(src, top, rel string) error {
	from, to := filepath.Join(src, "usr", rel), filepath.Join(top, rel)
	for _, dir := range parents(rel) {
		if err := mkdirLike(filepath.Join(src, "usr", dir), filepath.Join(top, dir)); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Lstat(from, &st); err != nil {
		return err
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return mkdirLike(from, to)
	case unix.S_IFLNK:
		target, err := os.Readlink(from)
		if err != nil {
			return err
		}
		if err := os.Symlink(target, to); err != nil {
			return err
		}
		return os.Lchown(to, int(st.Uid), int(st.Gid))
	case unix.S_IFREG:
		if err := os.Link(from, to); err != nil {
			if errors.Is(err, unix.EXDEV) {
				return fmt.Errorf("%w (the stateroot's /var must be on the sysroot's filesystem)", err)
			}
			return err
		}
		return nil
	}
	return fmt.Errorf("/usr%s: not a file, directory or symlink: %w", rel, errdefs.ErrInvalid)
}

// parents lists the directories above rel ("/a/b/c": "/a", "/a/b").
func parents(rel string) []string {
	var out []string
	for d := filepath.Dir(rel); d != "/" && d != "."; d = filepath.Dir(d) {
		out = append([]string{d}, out...)
	}
	return out
}

// mkdirLike creates directory to, unless it exists, with from's owner
// and mode.
func mkdirLike(from, to string) error {
	if fi, err := os.Lstat(to); err == nil && fi.IsDir() {
		return nil
	}
	var st unix.Stat_t
	if err := unix.Lstat(from, &st); err != nil {
		return err
	}
	if err := os.MkdirAll(to, 0o755); err != nil {
		return err
	}
	if err := os.Lchown(to, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(to, fs.FileMode(st.Mode&0o777)|unixModeBits(st.Mode))
}

// unixModeBits turns setuid, setgid and sticky bits of a stat mode into
// fs.FileMode bits.
func unixModeBits(m uint32) fs.FileMode {
	var out fs.FileMode
	if m&unix.S_ISUID != 0 {
		out |= fs.ModeSetuid
	}
	if m&unix.S_ISGID != 0 {
		out |= fs.ModeSetgid
	}
	if m&unix.S_ISVTX != 0 {
		out |= fs.ModeSticky
	}
	return out
}

// detachLive detaches the live overlays mounted on usr whose layers are
// in liveDir (an earlier apply-live): the new one replaces them. Programs
// that have files of theirs open keep them.
func detachLive(usr, liveDir string) error {
	for range 8 {
		top, ok, err := liveOverlay(usr, liveDir)
		if err != nil || !ok {
			return err
		}
		if err := unix.Unmount(usr, unix.MNT_DETACH); err != nil {
			return fmt.Errorf("detaching the live overlay of %s from %s: %w", top, usr, err)
		}
	}
	return fmt.Errorf("%s: live overlays remain mounted: %w", usr, errdefs.ErrFailedPrecondition)
}

// liveOverlay says whether the topmost mount on usr, in the mount table
// of the calling thread, is a live overlay with its layer in liveDir.
func liveOverlay(usr, liveDir string) (top string, ok bool, err error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return "", false, err
	}
	defer f.Close()
	return liveOverlayIn(f, usr, liveDir)
}

// liveOverlayIn is liveOverlay reading the mount table mountinfo.
func liveOverlayIn(table io.Reader, usr, liveDir string) (top string, ok bool, err error) {
	ms, err := mountinfo.GetMountsFromReader(table, func(m *mountinfo.Info) (skip, stop bool) {
		return m.Mountpoint != usr, false
	})
	if err != nil || len(ms) == 0 {
		return "", false, err
	}
	// The table lists a mount after the one it covers.
	m := ms[len(ms)-1]
	if m.FSType != "overlay" {
		return "", false, nil
	}
	for _, o := range strings.Split(m.VFSOptions, ",") {
		if l, has := strings.CutPrefix(o, "lowerdir="); has {
			if layers := fsutil.OverlayLowerdirs(unescapeOctal(l)); strings.HasPrefix(layers[0], liveDir+"/") {
				return layers[0], true, nil
			}
		}
	}
	return "", false, nil
}

// mountLive mounts top read-only over usr as the upper of two overlayfs lower layers, usr's
// current content the lower one. The paths are escaped for the option string: a comma, colon
// or backslash in the sysroot's path must not end the option or add a layer.
func mountLive(usr, top string) error {
	opts := "lowerdir=" + fsutil.OverlayPath(top) + ":" + fsutil.OverlayPath(usr)
	if err := unix.Mount("overlay", usr, "overlay", unix.MS_RDONLY, opts); err != nil {
		return fmt.Errorf("mounting the live overlay on %s: %w", usr, err)
	}
	return nil
}

// unescapeOctal undoes the \NNN escapes the kernel's mount table puts in place of a
// space, tab, newline, comma or backslash of a mount option.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }
