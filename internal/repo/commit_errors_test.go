package repo

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// cmExpectFailure commits src on top of an existing commit and checks that
// it fails with class and a message containing want, and that the
// repository is exactly as before: same ref, no new object, no staging
// directory left (the transaction was aborted).
func cmExpectFailure(t *testing.T, src func() TreeSource, class error, want string) {
	t.Helper()
	r := cmNewRepo(t, ModeArchive)
	base := cmWriteDir(t, cmTree1(), false)
	cmCommit(t, r, DirSource(base), CommitOptions{Branch: "b", Timestamp: time.Unix(1, 0)})
	before := cmRepoState(t, r)
	_, _, err := CommitTree(context.Background(), r, src(), CommitOptions{Branch: "b", Timestamp: time.Unix(2, 0)})
	if err == nil || (class != nil && !errors.Is(err, class)) || !strings.Contains(err.Error(), want) {
		t.Errorf("CommitTree = %v, want %v containing %q", err, class, want)
	}
	if after := cmRepoState(t, r); after != before {
		t.Errorf("repository after failed commit = %s, want unchanged %s", after, before)
	}
}

func TestCommitDirErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		add   func(t *testing.T, dir string)
		class error
		want  string
	}{
		{"fifo", func(t *testing.T, dir string) {
			if err := unix.Mkfifo(filepath.Join(dir, "bin", "pipe"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, errdefs.ErrInvalid, "bin/pipe: not a regular file or symlink"},
		{"socket", func(t *testing.T, dir string) {
			l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "sock"), Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			l.SetUnlinkOnClose(false)
			l.Close()
		}, errdefs.ErrInvalid, "sock: not a regular file or symlink"},
		{"invalid UTF-8 name", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "bad\xffname"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}, errdefs.ErrInvalid, "invalid UTF-8 in file name"},
		{"invalid UTF-8 symlink target", func(t *testing.T, dir string) {
			if err := os.Symlink("to\xff", filepath.Join(dir, "badlink")); err != nil {
				t.Fatal(err)
			}
		}, errdefs.ErrInvalid, "badlink: symlink target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := cmWriteDir(t, cmTree1(), false)
			tc.add(t, dir)
			cmExpectFailure(t, func() TreeSource { return DirSource(dir) }, tc.class, tc.want)
		})
	}
	t.Run("missing tree", func(t *testing.T) {
		t.Parallel()
		cmExpectFailure(t, func() TreeSource { return DirSource(filepath.Join(t.TempDir(), "nope")) }, os.ErrNotExist, "no such file")
	})
	t.Run("tree is a file", func(t *testing.T) {
		t.Parallel()
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o644)
		cmExpectFailure(t, func() TreeSource { return DirSource(f) }, errdefs.ErrInvalid, "is not a directory")
	})
}

// cmTar builds a tar stream from headers (regular files get their Size
// of zero bytes unless data is given in Linkname's place).
func cmTar(t *testing.T, hs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hs {
		if h.Format == tar.FormatUnknown {
			h.Format = tar.FormatPAX
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	tw.Close()
	return buf.Bytes()
}

func TestCommitTarErrors(t *testing.T) {
	t.Parallel()
	root := &tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o755}
	reg := func(name string) *tar.Header { return &tar.Header{Name: name, Typeflag: tar.TypeReg, Size: 1} }
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
		class   error
		want    string
	}{
		{"parent traversal", []*tar.Header{root, reg("../x")}, errdefs.ErrInvalid, `tar entry "../x": path climbs out`},
		{"inner traversal", []*tar.Header{root, reg("a/../x")}, errdefs.ErrInvalid, `path climbs out`},
		{"absolute path", []*tar.Header{root, reg("/etc/passwd")}, errdefs.ErrInvalid, `tar entry "/etc/passwd": absolute path`},
		{"through symlink", []*tar.Header{root,
			{Name: "d", Typeflag: tar.TypeDir},
			{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "d"},
			reg("l/x")}, errdefs.ErrInvalid, `tar entry "l/x": path goes through symlink l`},
		{"through file", []*tar.Header{root, reg("f"), reg("f/x")}, errdefs.ErrInvalid, `f is not a directory`},
		{"fifo", []*tar.Header{root, {Name: "p", Typeflag: tar.TypeFifo}}, errdefs.ErrInvalid, `tar entry "p": not a regular file or symlink`},
		{"char device", []*tar.Header{root, {Name: "c", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, errdefs.ErrInvalid, `not a regular file or symlink`},
		{"name too long", []*tar.Header{root, reg(strings.Repeat("n", 256))}, errdefs.ErrInvalid, `file name longer than 255 bytes`},
		{"invalid UTF-8", []*tar.Header{root, reg("bad\xff")}, errdefs.ErrInvalid, `invalid UTF-8 in file name`},
		{"file replaces directory", []*tar.Header{root, {Name: "d", Typeflag: tar.TypeDir}, reg("d")}, errdefs.ErrInvalid, `cannot replace directory d with a file`},
		{"hardlink to missing", []*tar.Header{root, {Name: "h", Typeflag: tar.TypeLink, Linkname: "nowhere"}}, errdefs.ErrNotFound, `hardlink /h: target nowhere does not exist`},
		{"hardlink to directory", []*tar.Header{root, {Name: "d", Typeflag: tar.TypeDir}, {Name: "h", Typeflag: tar.TypeLink, Linkname: "d"}}, errdefs.ErrInvalid, `target d is a directory`},
		{"hardlink cycle", []*tar.Header{root, {Name: "a", Typeflag: tar.TypeLink, Linkname: "b"}, {Name: "b", Typeflag: tar.TypeLink, Linkname: "a"}}, errdefs.ErrInvalid, `too many levels of hardlinks`},
		{"hardlink traversal", []*tar.Header{root, {Name: "h", Typeflag: tar.TypeLink, Linkname: "../etc/passwd"}}, errdefs.ErrInvalid, `hardlink target "../etc/passwd"`},
		{"truncated", nil, nil, "unexpected EOF"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			data := cmTar(t, tc.entries...)
			if tc.entries == nil {
				// Cut inside the payload of a file.
				data = cmTar(t, root, &tar.Header{Name: "big", Typeflag: tar.TypeReg, Size: 4000})[:3000]
			}
			cmExpectFailure(t, func() TreeSource { return TarSource(bytes.NewReader(data)) }, tc.class, tc.want)
		})
	}
}

// TestCommitTarSemantics checks the cases where libostree's tar import
// accepts a stream (checked against ostree 2022.7 by hand, see
// TarSource): strata must build the same tree.
func TestCommitTarSemantics(t *testing.T) {
	t.Parallel()
	root := &tar.Header{Name: ".", Typeflag: tar.TypeDir, Mode: 0o755}
	for _, tc := range []struct {
		name    string
		entries []*tar.Header
		want    string // ostree ls -R style summary from cmListTree
	}{
		{"later file wins", []*tar.Header{root, {Name: "x", Typeflag: tar.TypeReg, Size: 1}, {Name: "x", Typeflag: tar.TypeReg, Size: 3, Mode: 0o600}},
			"d0755 0 0 /;-0600 0 0 3 /x"},
		{"later directory keeps contents", []*tar.Header{root, {Name: "d", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "d/x", Typeflag: tar.TypeReg, Size: 1}, {Name: "d", Typeflag: tar.TypeDir, Mode: 0o700}},
			"d0755 0 0 /;d0700 0 0 /d;-0644 0 0 1 /d/x"},
		{"root entry later", []*tar.Header{{Name: "x", Typeflag: tar.TypeReg, Size: 1}, {Name: "./", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 5, Gid: 6}},
			"d0700 5 6 /;-0644 0 0 1 /x"},
		{"implicit parents", []*tar.Header{{Name: "a/b/c", Typeflag: tar.TypeReg, Size: 2, Uid: 7}},
			"d0755 0 0 /;d0755 0 0 /a;d0755 0 0 /a/b;-0644 7 0 2 /a/b/c"},
		{"hardlink takes target metadata", []*tar.Header{root, {Name: "x", Typeflag: tar.TypeReg, Size: 1, Mode: 0o600, Uid: 3}, {Name: "y", Typeflag: tar.TypeLink, Linkname: "x", Mode: 0o777}},
			"d0755 0 0 /;-0600 3 0 1 /x;-0600 3 0 1 /y"},
		{"forward hardlink", []*tar.Header{root, {Name: "y", Typeflag: tar.TypeLink, Linkname: "./x"}, {Name: "x", Typeflag: tar.TypeReg, Size: 1}},
			"d0755 0 0 /;-0644 0 0 1 /x;-0644 0 0 1 /y"},
		{"hardlink to symlink", []*tar.Header{root, {Name: "l", Typeflag: tar.TypeSymlink, Linkname: "nowhere"}, {Name: "y", Typeflag: tar.TypeLink, Linkname: "l"}},
			"d0755 0 0 /;l0644 0 0 /l -> nowhere;l0644 0 0 /y -> nowhere"},
		{"symlink keeps header mode", []*tar.Header{root, {Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/abs/dangling", Mode: 0o755, Uid: 4}},
			"d0755 0 0 /;l0755 4 0 /l -> /abs/dangling"},
		{"directory replaces file", []*tar.Header{root, {Name: "d", Typeflag: tar.TypeReg, Size: 1}, {Name: "d", Typeflag: tar.TypeDir, Mode: 0o700}},
			"d0755 0 0 /;d0700 0 0 /d"},
		{"setuid and sticky", []*tar.Header{root, {Name: "t", Typeflag: tar.TypeDir, Mode: 0o1777}, {Name: "t/s", Typeflag: tar.TypeReg, Size: 1, Mode: 0o4755}},
			"d0755 0 0 /;d1777 0 0 /t;-4755 0 0 1 /t/s"},
		{"dot components", []*tar.Header{root, {Name: "./a/./b//c", Typeflag: tar.TypeReg, Size: 1}},
			"d0755 0 0 /;d0755 0 0 /a;d0755 0 0 /a/b;-0644 0 0 1 /a/b/c"},
		{"empty stream", nil, "d0755 0 0 /"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := cmNewRepo(t, ModeArchive)
			c, _ := cmCommit(t, r, TarSource(bytes.NewReader(cmTar(t, tc.entries...))), CommitOptions{Timestamp: time.Unix(1, 0)})
			if got := cmListTree(t, r, c); got != tc.want {
				t.Errorf("CommitTree(%s) tree = %s, want %s", tc.name, got, tc.want)
			}
		})
	}
}

// cmListTree summarizes a commit's tree in walk order, ostree ls style.
func cmListTree(t *testing.T, r *Repo, c interface{ String() string }) string {
	t.Helper()
	cs, err := r.ResolveRev(c.String())
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	err = WalkCommit(context.Background(), r, cs, func(e *WalkEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Kind == EntryDir {
			m, err := e.DirMeta()
			if err != nil {
				return err
			}
			out = append(out, fmt.Sprintf("d%04o %d %d %s", m.Mode&0o7777, m.UID, m.GID, e.Path))
			return nil
		}
		fi, size, err := e.FileInfo()
		if err != nil {
			return err
		}
		if fi.IsSymlink() {
			out = append(out, fmt.Sprintf("l%04o %d %d %s -> %s", fi.Mode&0o7777, fi.UID, fi.GID, e.Path, fi.SymlinkTarget))
		} else {
			out = append(out, fmt.Sprintf("-%04o %d %d %d %s", fi.Mode&0o7777, fi.UID, fi.GID, size, e.Path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, ";")
}
