package sysroot

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"golang.org/x/sys/unix"
)

// etcEntry describes one file of a test tree. The zero owner means the
// test process's own (uid 0 in the root tier).
type etcEntry struct {
	path     string
	kind     byte // 'f' file, 'd' directory, 'l' symlink, 'p' fifo
	content  string
	mode     os.FileMode // permission bits, with os.ModeSetuid/ModeSetgid/ModeSticky
	uid, gid int         // 0: the test process's
	xattrs   map[string]string
}

func eFile(p, content string) etcEntry {
	return etcEntry{path: p, kind: 'f', content: content, mode: 0o644}
}
func eDir(p string) etcEntry { return etcEntry{path: p, kind: 'd', mode: 0o755} }
func eLink(p, target string) etcEntry {
	return etcEntry{path: p, kind: 'l', content: target, mode: 0o777}
}
func eFifo(p string) etcEntry { return etcEntry{path: p, kind: 'p', mode: 0o644} }

func (e etcEntry) withMode(m os.FileMode) etcEntry { e.mode = m; return e }
func (e etcEntry) withOwner(uid, gid int) etcEntry { e.uid, e.gid = uid, gid; return e }
func (e etcEntry) withXattr(name, value string) etcEntry {
	x := map[string]string{name: value}
	for k, v := range e.xattrs {
		x[k] = v
	}
	e.xattrs = x
	return e
}

func (e etcEntry) owner() (int, int) {
	uid, gid := e.uid, e.gid
	if uid == 0 {
		uid = os.Geteuid()
	}
	if gid == 0 {
		gid = os.Getegid()
	}
	return uid, gid
}

// etcWriteTree creates entries under dir (parents first: list them in
// order). Modes, owners and xattrs are set after creation, so that umask
// plays no part.
func etcWriteTree(t testing.TB, dir string, entries []etcEntry) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		p := filepath.Join(dir, e.path)
		var err error
		switch e.kind {
		case 'f':
			err = os.WriteFile(p, []byte(e.content), 0o600)
		case 'd':
			err = os.Mkdir(p, 0o700)
		case 'l':
			err = os.Symlink(e.content, p)
		case 'p':
			err = unix.Mkfifo(p, 0o600)
		default:
			err = fmt.Errorf("unknown kind %q", e.kind)
		}
		if err != nil {
			t.Fatalf("creating %s: %v", p, err)
		}
		uid, gid := e.owner()
		if err := os.Lchown(p, uid, gid); err != nil {
			t.Fatalf("chown %s: %v", p, err)
		}
		for k, v := range e.xattrs {
			if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
				t.Fatalf("setting xattr %s on %s: %v", k, p, err)
			}
		}
		if e.kind != 'l' {
			if err := unix.Chmod(p, etcUnixMode(e.mode)); err != nil {
				t.Fatalf("chmod %s: %v", p, err)
			}
		}
	}
}

func etcUnixMode(m os.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&os.ModeSetuid != 0 {
		u |= unix.S_ISUID
	}
	if m&os.ModeSetgid != 0 {
		u |= unix.S_ISGID
	}
	if m&os.ModeSticky != 0 {
		u |= unix.S_ISVTX
	}
	return u
}

// etcDescribe is the line an entry gets in a tree listing: kind, mode
// (with setuid/setgid/sticky), owner, content (or its sha256 when long) or
// symlink target, and the xattrs sorted.
func etcDescribe(kind byte, mode uint32, uid, gid int, content string, xattrs map[string]string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%c %04o %d:%d", kind, mode&0o7777, uid, gid)
	switch kind {
	case 'f':
		if len(content) > 80 {
			fmt.Fprintf(&b, " sha256:%x", sha256.Sum256([]byte(content)))
		} else {
			fmt.Fprintf(&b, " %q", content)
		}
	case 'l':
		fmt.Fprintf(&b, " -> %s", content)
	}
	names := make([]string, 0, len(xattrs))
	for k := range xattrs {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		fmt.Fprintf(&b, " %s=%q", k, xattrs[k])
	}
	return b.String()
}

// etcWant is the listing entries should produce.
func etcWant(entries []etcEntry) map[string]string {
	out := map[string]string{}
	for _, e := range entries {
		uid, gid := e.owner()
		out[e.path] = etcDescribe(e.kind, etcUnixMode(e.mode), uid, gid, e.content, e.xattrs)
	}
	return out
}

// etcListing lists the tree under dir by path (relative, slash-separated),
// never following symlinks. withMtime adds the modification time of
// regular files.
func etcListing(t testing.TB, dir string, withMtime bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == dir {
			return nil
		}
		rel, _ := filepath.Rel(dir, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		names, values, err := fsutil.Llistxattr(p)
		if err != nil {
			return err
		}
		xattrs := map[string]string{}
		for i, n := range names {
			xattrs[n] = string(values[i])
		}
		var kind byte
		var content string
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			kind = 'f'
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			content = string(b)
		case unix.S_IFDIR:
			kind = 'd'
		case unix.S_IFLNK:
			kind = 'l'
			if content, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFIFO:
			kind = 'p'
		default:
			kind = '?'
		}
		desc := etcDescribe(kind, st.Mode, int(st.Uid), int(st.Gid), content, xattrs)
		if withMtime && kind == 'f' {
			desc += fmt.Sprintf(" mtime=%d.%09d", st.Mtim.Sec, st.Mtim.Nsec)
		}
		out[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", dir, err)
	}
	return out
}

// etcMergeCase is one /etc merge scenario: the merge deployment's
// defaults (usr/etc) and etc, the new defaults, and the new etc expected.
// The same table drives the unit tests and the differential test against
// `ostree admin deploy`.
type etcMergeCase struct {
	name       string
	oldDefault []etcEntry
	oldEtc     []etcEntry
	newDefault []etcEntry
	want       []etcEntry // the whole new etc, when the merge succeeds
	// wantErr, when set, is a substring (compared case-insensitively) of
	// both strata's and ostree's error; wantClass is strata's error class.
	wantErr   string
	wantClass error
	root      bool // needs root: other owners, trusted.* xattrs, setuid
}

// etcMergeCases are the rows of spec §9's table, then the edges libostree's
// code has (ostree-sysroot-deploy.c, copy_modified_config_file and
// ensure_directory_from_template).
func etcMergeCases() []etcMergeCase {
	return []etcMergeCase{
		// spec §9, CONFIRMED table.
		{name: "unchanged takes the new default",
			oldDefault: []etcEntry{eFile("unchanged.conf", "unchanged v1")},
			oldEtc:     []etcEntry{eFile("unchanged.conf", "unchanged v1")},
			newDefault: []etcEntry{eFile("unchanged.conf", "unchanged v2")},
			want:       []etcEntry{eFile("unchanged.conf", "unchanged v2")}},
		{name: "local modification wins",
			oldDefault: []etcEntry{eFile("modified.conf", "v1")},
			oldEtc:     []etcEntry{eFile("modified.conf", "local")},
			newDefault: []etcEntry{eFile("modified.conf", "v2")},
			want:       []etcEntry{eFile("modified.conf", "local")}},
		{name: "local deletion wins",
			oldDefault: []etcEntry{eFile("deleted.conf", "v1"), eFile("keep.conf", "k")},
			oldEtc:     []etcEntry{eFile("keep.conf", "k")},
			newDefault: []etcEntry{eFile("deleted.conf", "v2"), eFile("keep.conf", "k")},
			want:       []etcEntry{eFile("keep.conf", "k")}},
		{name: "metadata-only change counts",
			oldDefault: []etcEntry{eFile("chmod.conf", "same")},
			oldEtc:     []etcEntry{eFile("chmod.conf", "same").withMode(0o600)},
			newDefault: []etcEntry{eFile("chmod.conf", "same")},
			want:       []etcEntry{eFile("chmod.conf", "same").withMode(0o600)}},
		{name: "added file and directory",
			oldDefault: []etcEntry{eFile("keep.conf", "k")},
			oldEtc:     []etcEntry{eFile("keep.conf", "k"), eFile("added.conf", "a"), eDir("newdir").withMode(0o750), eFile("newdir/x.conf", "x")},
			newDefault: []etcEntry{eFile("keep.conf", "k")},
			want:       []etcEntry{eFile("keep.conf", "k"), eFile("added.conf", "a"), eDir("newdir").withMode(0o750), eFile("newdir/x.conf", "x")}},
		{name: "unchanged file in a directory takes the new default",
			oldDefault: []etcEntry{eDir("dir"), eFile("dir/sub.conf", "v1")},
			oldEtc:     []etcEntry{eDir("dir"), eFile("dir/sub.conf", "v1")},
			newDefault: []etcEntry{eDir("dir"), eFile("dir/sub.conf", "v2")},
			want:       []etcEntry{eDir("dir"), eFile("dir/sub.conf", "v2")}},
		{name: "new default appears",
			oldDefault: []etcEntry{eFile("keep.conf", "k")},
			oldEtc:     []etcEntry{eFile("keep.conf", "k")},
			newDefault: []etcEntry{eFile("keep.conf", "k"), eFile("newdefault.conf", "n")},
			want:       []etcEntry{eFile("keep.conf", "k"), eFile("newdefault.conf", "n")}},
		{name: "modified file removed from the new defaults is kept",
			oldDefault: []etcEntry{eFile("modkept.conf", "v1")},
			oldEtc:     []etcEntry{eFile("modkept.conf", "local")},
			newDefault: nil,
			want:       []etcEntry{eFile("modkept.conf", "local")}},
		{name: "deleted file changed in the new defaults stays deleted",
			oldDefault: []etcEntry{eFile("delchanged.conf", "v1")},
			oldEtc:     nil,
			newDefault: []etcEntry{eFile("delchanged.conf", "v2")},
			want:       nil},
		{name: "directory mode change is lost",
			oldDefault: []etcEntry{eDir("dirmode"), eFile("dirmode/x.conf", "v1")},
			oldEtc:     []etcEntry{eDir("dirmode").withMode(0o700), eFile("dirmode/x.conf", "v1")},
			newDefault: []etcEntry{eDir("dirmode"), eFile("dirmode/x.conf", "v2")},
			want:       []etcEntry{eDir("dirmode"), eFile("dirmode/x.conf", "v2")}},
		{name: "file replaced by a symlink",
			oldDefault: []etcEntry{eFile("typechg.conf", "v1"), eFile("keep.conf", "k")},
			oldEtc:     []etcEntry{eLink("typechg.conf", "keep.conf"), eFile("keep.conf", "k")},
			newDefault: []etcEntry{eFile("typechg.conf", "v2"), eFile("keep.conf", "k")},
			want:       []etcEntry{eLink("typechg.conf", "keep.conf"), eFile("keep.conf", "k")}},
		{name: "added on both sides, local wins",
			oldDefault: nil,
			oldEtc:     []etcEntry{eFile("bothadd.conf", "local")},
			newDefault: []etcEntry{eFile("bothadd.conf", "default")},
			want:       []etcEntry{eFile("bothadd.conf", "local")}},
		{name: "unchanged file removed from the new defaults disappears",
			oldDefault: []etcEntry{eFile("gone.conf", "v1")},
			oldEtc:     []etcEntry{eFile("gone.conf", "v1")},
			newDefault: nil,
			want:       nil},

		// Beyond the table.
		{name: "directory mode change survives when a path inside changed",
			oldDefault: []etcEntry{eDir("dirmode2"), eFile("dirmode2/y.conf", "v1")},
			oldEtc:     []etcEntry{eDir("dirmode2").withMode(0o700), eFile("dirmode2/y.conf", "local")},
			newDefault: []etcEntry{eDir("dirmode2"), eFile("dirmode2/y.conf", "v2")},
			want:       []etcEntry{eDir("dirmode2").withMode(0o700), eFile("dirmode2/y.conf", "local")}},
		{name: "only the direct parent of a changed path takes the local mode",
			oldDefault: []etcEntry{eDir("a"), eDir("a/b"), eFile("a/b/c.conf", "v1")},
			oldEtc:     []etcEntry{eDir("a").withMode(0o750), eDir("a/b"), eFile("a/b/c.conf", "local")},
			newDefault: []etcEntry{eDir("a"), eDir("a/b"), eFile("a/b/c.conf", "v2")},
			want:       []etcEntry{eDir("a"), eDir("a/b"), eFile("a/b/c.conf", "local")}},
		{name: "a changed directory makes its parent take the local mode",
			oldDefault: []etcEntry{eDir("a"), eDir("a/b"), eFile("a/b/c.conf", "v1")},
			oldEtc:     []etcEntry{eDir("a").withMode(0o750), eDir("a/b").withMode(0o700), eFile("a/b/c.conf", "v1")},
			newDefault: []etcEntry{eDir("a"), eDir("a/b"), eFile("a/b/c.conf", "v2")},
			want:       []etcEntry{eDir("a").withMode(0o750), eDir("a/b"), eFile("a/b/c.conf", "v2")}},
		{name: "modified directory gone from the new defaults comes back whole",
			oldDefault: []etcEntry{eDir("m"), eFile("m/a.conf", "a1"), eFile("m/b.conf", "b1")},
			oldEtc:     []etcEntry{eDir("m").withMode(0o700), eFile("m/a.conf", "a1"), eFile("m/b.conf", "local")},
			newDefault: nil,
			want:       []etcEntry{eDir("m").withMode(0o700), eFile("m/a.conf", "a1"), eFile("m/b.conf", "local")}},
		{name: "unmodified directory gone from the new defaults keeps only the changed path",
			oldDefault: []etcEntry{eDir("m"), eFile("m/a.conf", "a1"), eFile("m/b.conf", "b1")},
			oldEtc:     []etcEntry{eDir("m"), eFile("m/a.conf", "a1"), eFile("m/b.conf", "local")},
			newDefault: nil,
			want:       []etcEntry{eDir("m"), eFile("m/b.conf", "local")}},
		{name: "file replaced by a directory",
			oldDefault: []etcEntry{eFile("f2d", "v1")},
			oldEtc:     []etcEntry{eDir("f2d").withMode(0o750), eFile("f2d/inner.conf", "i"), eDir("f2d/deeper"), eLink("f2d/deeper/l", "../inner.conf")},
			newDefault: []etcEntry{eFile("f2d", "v2")},
			want:       []etcEntry{eDir("f2d").withMode(0o750), eFile("f2d/inner.conf", "i"), eDir("f2d/deeper"), eLink("f2d/deeper/l", "../inner.conf")}},
		{name: "directory replaced by a file, directory still a default",
			oldDefault: []etcEntry{eDir("d2f"), eFile("d2f/x.conf", "v1")},
			oldEtc:     []etcEntry{eFile("d2f", "now a file")},
			newDefault: []etcEntry{eDir("d2f"), eFile("d2f/x.conf", "v2")},
			wantErr:    "newly defaults to directory", wantClass: errdefs.ErrFailedPrecondition},
		{name: "directory replaced by a file, directory gone from the defaults",
			oldDefault: []etcEntry{eDir("d2f"), eFile("d2f/x.conf", "v1")},
			oldEtc:     []etcEntry{eFile("d2f", "now a file")},
			newDefault: nil,
			want:       []etcEntry{eFile("d2f", "now a file")}},
		{name: "added file where the new defaults have a directory",
			oldDefault: nil,
			oldEtc:     []etcEntry{eFile("clash", "local")},
			newDefault: []etcEntry{eDir("clash")},
			wantErr:    "newly defaults to directory", wantClass: errdefs.ErrFailedPrecondition},
		{name: "symlink retargeted",
			oldDefault: []etcEntry{eFile("a.conf", "a"), eFile("b.conf", "b"), eLink("current", "a.conf")},
			oldEtc:     []etcEntry{eFile("a.conf", "a"), eFile("b.conf", "b"), eLink("current", "b.conf")},
			newDefault: []etcEntry{eFile("a.conf", "a2"), eFile("b.conf", "b2"), eLink("current", "a.conf")},
			want:       []etcEntry{eFile("a.conf", "a2"), eFile("b.conf", "b2"), eLink("current", "b.conf")}},
		{name: "symlink replaced by a file",
			oldDefault: []etcEntry{eLink("localtime", "../usr/share/zoneinfo/UTC")},
			oldEtc:     []etcEntry{eFile("localtime", "TZif")},
			newDefault: []etcEntry{eLink("localtime", "../usr/share/zoneinfo/Etc/UTC")},
			want:       []etcEntry{eFile("localtime", "TZif")}},
		{name: "xattrs come with a modified file",
			oldDefault: []etcEntry{eFile("x.conf", "v1")},
			oldEtc:     []etcEntry{eFile("x.conf", "local").withXattr("user.note", "mine")},
			newDefault: []etcEntry{eFile("x.conf", "v2").withXattr("user.other", "default")},
			want:       []etcEntry{eFile("x.conf", "local").withXattr("user.note", "mine")}},
		{name: "xattr-only change is no change",
			oldDefault: []etcEntry{eFile("x.conf", "v1")},
			oldEtc:     []etcEntry{eFile("x.conf", "v1").withXattr("user.note", "mine")},
			newDefault: []etcEntry{eFile("x.conf", "v2")},
			want:       []etcEntry{eFile("x.conf", "v2")}},
		{name: "parent directory takes xattrs from etc",
			oldDefault: []etcEntry{eDir("d"), eFile("d/x.conf", "v1")},
			oldEtc:     []etcEntry{eDir("d").withXattr("user.dir", "local"), eFile("d/x.conf", "local")},
			newDefault: []etcEntry{eDir("d").withXattr("user.keep", "default"), eFile("d/x.conf", "v2")},
			want:       []etcEntry{eDir("d").withXattr("user.dir", "local").withXattr("user.keep", "default"), eFile("d/x.conf", "local")}},
		{name: "nested added directories",
			oldDefault: []etcEntry{eDir("base")},
			oldEtc: []etcEntry{eDir("base"), eDir("base/n1").withMode(0o750), eDir("base/n1/n2").withMode(0o700), eDir("base/n1/n2/n3"),
				eFile("base/n1/n2/n3/deep.conf", "deep"), eFile("base/n1/top.conf", "top").withMode(0o640), eDir("base/n1/empty").withMode(0o711)},
			newDefault: []etcEntry{eDir("base"), eFile("base/default.conf", "d")},
			want: []etcEntry{eDir("base"), eFile("base/default.conf", "d"), eDir("base/n1").withMode(0o750), eDir("base/n1/n2").withMode(0o700), eDir("base/n1/n2/n3"),
				eFile("base/n1/n2/n3/deep.conf", "deep"), eFile("base/n1/top.conf", "top").withMode(0o640), eDir("base/n1/empty").withMode(0o711)}},
		{name: "removed directory tree",
			oldDefault: []etcEntry{eDir("tree"), eDir("tree/sub"), eFile("tree/sub/a.conf", "a"), eFile("tree/b.conf", "b")},
			oldEtc:     nil,
			newDefault: []etcEntry{eDir("tree"), eDir("tree/sub"), eFile("tree/sub/a.conf", "a2"), eFile("tree/sub/new.conf", "n"), eFile("tree/b.conf", "b")},
			want:       nil},
		{name: "file added under a modified directory the new defaults removed",
			oldDefault: []etcEntry{eDir("old"), eFile("old/default.conf", "d")},
			oldEtc:     []etcEntry{eDir("old").withMode(0o750), eFile("old/default.conf", "d"), eFile("old/local.conf", "l")},
			newDefault: nil,
			want:       []etcEntry{eDir("old").withMode(0o750), eFile("old/default.conf", "d"), eFile("old/local.conf", "l")}},
		{name: "file added under an unchanged directory the new defaults removed",
			oldDefault: []etcEntry{eDir("old"), eFile("old/default.conf", "d")},
			oldEtc:     []etcEntry{eDir("old"), eFile("old/default.conf", "d"), eFile("old/local.conf", "l")},
			newDefault: nil,
			want:       []etcEntry{eDir("old"), eFile("old/local.conf", "l")}},
		{name: "added fifo is skipped",
			oldDefault: nil,
			oldEtc:     []etcEntry{eFifo("initctl"), eFile("a.conf", "a")},
			newDefault: nil,
			want:       []etcEntry{eFile("a.conf", "a")}},
		{name: "added fifo still unlinks the new default it replaces",
			oldDefault: nil,
			oldEtc:     []etcEntry{eFifo("pipe")},
			newDefault: []etcEntry{eFile("pipe", "default")},
			want:       nil},
		{name: "fifo inside an added directory fails",
			oldDefault: nil,
			oldEtc:     []etcEntry{eDir("fd"), eFifo("fd/pipe")},
			newDefault: nil,
			wantErr:    "non-regular/non-symlink file", wantClass: errdefs.ErrUnsupported},
		{name: "removal below a directory that became a file fails",
			oldDefault: []etcEntry{eDir("d"), eFile("d/x.conf", "v1")},
			oldEtc:     []etcEntry{eDir("d")},
			newDefault: []etcEntry{eFile("d", "now a file")},
			wantErr:    "not a directory"},
		{name: "absolute symlink to a secret is copied as a symlink",
			oldDefault: nil,
			oldEtc:     []etcEntry{eLink("evil", "/etc/shadow"), eLink("climb", "../../..")},
			newDefault: nil,
			want:       []etcEntry{eLink("evil", "/etc/shadow"), eLink("climb", "../../..")}},
		{name: "symlinked directory inside etc is followed",
			oldDefault: []etcEntry{eDir("real"), eDir("alias"), eFile("alias/x.conf", "v1")},
			oldEtc:     []etcEntry{eDir("real"), eDir("alias"), eFile("alias/x.conf", "local"), eFile("alias/added.conf", "a")},
			newDefault: []etcEntry{eDir("real"), eLink("alias", "real")},
			want:       []etcEntry{eDir("real"), eFile("real/x.conf", "local"), eFile("real/added.conf", "a"), eLink("alias", "real")}},
		{name: "setuid file and owners",
			root:       true,
			oldDefault: []etcEntry{eFile("suid", "v1").withMode(0o755), eDir("home").withOwner(1000, 1000), eFile("home/rc", "v1").withOwner(1000, 1000)},
			oldEtc:     []etcEntry{eFile("suid", "v1").withMode(os.ModeSetuid | 0o755), eDir("home").withOwner(1000, 1000), eFile("home/rc", "v1").withOwner(1001, 1000).withMode(0o600)},
			newDefault: []etcEntry{eFile("suid", "v2").withMode(0o755), eDir("home"), eFile("home/rc", "v2")},
			want:       []etcEntry{eFile("suid", "v1").withMode(os.ModeSetuid | 0o755), eDir("home").withOwner(1000, 1000), eFile("home/rc", "v1").withOwner(1001, 1000).withMode(0o600)}},
		{name: "directory owner change is lost",
			root:       true,
			oldDefault: []etcEntry{eDir("owned"), eFile("owned/x.conf", "v1")},
			oldEtc:     []etcEntry{eDir("owned").withOwner(1000, 1000), eFile("owned/x.conf", "v1")},
			newDefault: []etcEntry{eDir("owned"), eFile("owned/x.conf", "v2")},
			want:       []etcEntry{eDir("owned"), eFile("owned/x.conf", "v2")}},
		{name: "owner change of a symlink counts",
			root:       true,
			oldDefault: []etcEntry{eLink("l", "target")},
			oldEtc:     []etcEntry{eLink("l", "target").withOwner(1000, 1000)},
			newDefault: []etcEntry{eLink("l", "target2")},
			want:       []etcEntry{eLink("l", "target").withOwner(1000, 1000)}},
		{name: "trusted and user xattrs on files, directories and symlinks",
			root:       true,
			oldDefault: []etcEntry{eFile("t.conf", "v1")},
			oldEtc: []etcEntry{eFile("t.conf", "local").withXattr("trusted.a", "t").withXattr("user.b", "u"),
				eDir("td").withXattr("trusted.d", "dir"), eFile("td/in.conf", "in").withXattr("trusted.in", "1"),
				eLink("tl", "t.conf").withXattr("trusted.l", "link")},
			newDefault: []etcEntry{eFile("t.conf", "v2").withXattr("trusted.default", "x")},
			want: []etcEntry{eFile("t.conf", "local").withXattr("trusted.a", "t").withXattr("user.b", "u"),
				eDir("td").withXattr("trusted.d", "dir"), eFile("td/in.conf", "in").withXattr("trusted.in", "1"),
				eLink("tl", "t.conf").withXattr("trusted.l", "link")}},
		{name: "unreadable modified file",
			root:       true,
			oldDefault: []etcEntry{eFile("shadow", "v1").withMode(0o000)},
			oldEtc:     []etcEntry{eFile("shadow", "local").withMode(0o000).withXattr("user.x", "1")},
			newDefault: []etcEntry{eFile("shadow", "v2").withMode(0o000)},
			want:       []etcEntry{eFile("shadow", "local").withMode(0o000).withXattr("user.x", "1")}},
	}
}

// etcRunMerge writes the case's three trees under dir and merges them.
func etcRunMerge(t *testing.T, dir string, c etcMergeCase) (newEtc string, err error) {
	t.Helper()
	oldDefault, oldEtc := filepath.Join(dir, "usr-etc"), filepath.Join(dir, "etc")
	newEtc = filepath.Join(dir, "new-etc")
	etcWriteTree(t, oldDefault, c.oldDefault)
	etcWriteTree(t, oldEtc, c.oldEtc)
	etcWriteTree(t, newEtc, c.newDefault)
	return newEtc, MergeEtc(oldDefault, oldEtc, newEtc)
}

func etcCheckMerge(t *testing.T, c etcMergeCase) {
	dir := t.TempDir()
	newEtc, err := etcRunMerge(t, dir, c)
	if c.wantErr != "" {
		if err == nil || !strings.Contains(strings.ToLower(err.Error()), c.wantErr) {
			t.Fatalf("MergeEtc() = %v, want an error containing %q", err, c.wantErr)
		}
		if c.wantClass != nil && !errors.Is(err, c.wantClass) {
			t.Errorf("MergeEtc() = %v, want errors.Is %v", err, c.wantClass)
		}
		return
	}
	if err != nil {
		t.Fatalf("MergeEtc() = %v, want nil", err)
	}
	if diff := cmp.Diff(etcWant(c.want), etcListing(t, newEtc, false)); diff != "" {
		t.Errorf("new etc after MergeEtc (-want +got):\n%s", diff)
	}
}

func TestMergeEtc(t *testing.T) {
	t.Parallel()
	for _, c := range etcMergeCases() {
		if c.root {
			continue // TestMergeEtcRoot, root tier
		}
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			etcCheckMerge(t, c)
		})
	}
}

func TestDiffEtc(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	oldDefault, oldEtc := filepath.Join(dir, "usr-etc"), filepath.Join(dir, "etc")
	etcWriteTree(t, oldDefault, []etcEntry{
		eFile("same.conf", "s"), eFile("content.conf", "v1"), eFile("mode.conf", "m"), eFile("xattr.conf", "x"),
		eFile("gone.conf", "g"), eDir("gonedir"), eFile("gonedir/a", "a"), eDir("gonedir/sub"),
		eDir("dirmode"), eFile("dirmode/in.conf", "i"), eFile("dirmode/changed.conf", "c1"),
		eLink("link", "a"), eFile("f2l", "f"), eDir("d2f"), eFile("d2f/x", "x"),
	})
	etcWriteTree(t, oldEtc, []etcEntry{
		eFile("same.conf", "s"), eFile("content.conf", "v2"), eFile("mode.conf", "m").withMode(0o600),
		eFile("xattr.conf", "x").withXattr("user.k", "v"),
		eDir("dirmode").withMode(0o700), eFile("dirmode/in.conf", "i"), eFile("dirmode/changed.conf", "c2"), eFile("dirmode/new.conf", "n"),
		eLink("link", "b"), eLink("f2l", "same.conf"), eFile("d2f", "file"),
		eDir("added"), eDir("added/sub"), eFile("added/sub/deep", "d"), eLink("added/l", "/etc/shadow"), eFifo("fifo"),
	})
	got, err := DiffEtc(oldDefault, oldEtc)
	if err != nil {
		t.Fatalf("DiffEtc() = %v", err)
	}
	want := EtcDiff{
		Modified: []string{"content.conf", "d2f", "dirmode", "dirmode/changed.conf", "f2l", "link", "mode.conf"},
		Removed:  []string{"gone.conf", "gonedir"},
		Added:    []string{"added", "added/l", "added/sub", "added/sub/deep", "dirmode/new.conf", "fifo"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DiffEtc() (-want +got):\n%s", diff)
	}
}

func TestMergeEtcErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	etcWriteTree(t, filepath.Join(dir, "etc"), nil)
	etcWriteTree(t, filepath.Join(dir, "file"), nil)
	if err := os.WriteFile(filepath.Join(dir, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                       string
		oldDefault, oldEtc, newEtc string
	}{
		{"missing defaults", "nope", "etc", "file"},
		{"missing etc", "etc", "nope", "file"},
		{"missing new etc", "etc", "file", "nope"},
		{"defaults not a directory", "afile", "etc", "file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := MergeEtc(filepath.Join(dir, tt.oldDefault), filepath.Join(dir, tt.oldEtc), filepath.Join(dir, tt.newEtc))
			if err == nil {
				t.Errorf("MergeEtc(%s, %s, %s) = nil, want an error", tt.oldDefault, tt.oldEtc, tt.newEtc)
			}
		})
	}
}

// An etc symlink that leads out of the new etc is never followed: the
// merge fails and nothing outside changes.
func TestMergeEtcEscapingSymlink(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		oldDefault []etcEntry
		oldEtc     []etcEntry
		target     func(outside string) string
	}{
		{name: "absolute, added file below",
			oldDefault: []etcEntry{eDir("d")},
			oldEtc:     []etcEntry{eDir("d"), eFile("d/victim", "written")},
			target:     func(outside string) string { return outside }},
		{name: "relative climb, added file below",
			oldDefault: []etcEntry{eDir("d")},
			oldEtc:     []etcEntry{eDir("d"), eFile("d/victim", "written")},
			target:     func(string) string { return "../outside" }},
		{name: "relative climb, removed file below",
			oldDefault: []etcEntry{eDir("d"), eFile("d/victim", "default")},
			oldEtc:     []etcEntry{eDir("d")},
			target:     func(string) string { return "../outside" }},
		{name: "absolute, modified directory below",
			oldDefault: []etcEntry{eDir("d"), eDir("d/victim"), eFile("d/victim/f", "1")},
			oldEtc:     []etcEntry{eDir("d"), eDir("d/victim").withMode(0o700), eFile("d/victim/f", "2")},
			target:     func(outside string) string { return outside }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			outside := filepath.Join(dir, "outside")
			etcWriteTree(t, outside, []etcEntry{eDir("victim"), eFile("victim/f", "outside"), eFile("keep", "k")})
			before := etcListing(t, outside, true)
			_, err := etcRunMerge(t, dir, etcMergeCase{
				oldDefault: tt.oldDefault,
				oldEtc:     tt.oldEtc,
				newDefault: []etcEntry{eLink("d", tt.target(outside))},
			})
			if err == nil {
				t.Errorf("MergeEtc() = nil, want an error for a path through d -> %s", tt.target(outside))
			}
			if diff := cmp.Diff(before, etcListing(t, outside, true)); diff != "" {
				t.Errorf("MergeEtc() changed a directory outside the new etc (-before +after):\n%s", diff)
			}
		})
	}
}

// etcBenchTrees writes an etc the size of a Debian one (1500 files in 100
// directories) as defaults, a local etc with 30 files modified, 30 added
// and 30 removed, and new defaults with 100 files changed.
func etcBenchTrees(b *testing.B, dir string) (oldDefault, oldEtc string, newDefault []etcEntry) {
	var def, local []etcEntry
	for d := range 100 {
		dp := fmt.Sprintf("d%02d", d)
		def, local = append(def, eDir(dp)), append(local, eDir(dp))
		newDefault = append(newDefault, eDir(dp))
		for f := range 15 {
			p, content := fmt.Sprintf("%s/f%02d.conf", dp, f), strings.Repeat(fmt.Sprintf("%s line\n", dp), 40)
			def = append(def, eFile(p, content))
			switch n := d*15 + f; {
			case n%50 == 1:
				local = append(local, eFile(p, content+"local\n"))
			case n%50 == 2:
			default:
				local = append(local, eFile(p, content))
			}
			if (d*15+f)%15 == 3 {
				newDefault = append(newDefault, eFile(p, content+"v2\n"))
			} else {
				newDefault = append(newDefault, eFile(p, content))
			}
			if (d*15+f)%50 == 4 {
				local = append(local, eFile(p+".local", "added\n"))
			}
		}
	}
	oldDefault, oldEtc = filepath.Join(dir, "usr-etc"), filepath.Join(dir, "etc")
	etcWriteTree(b, oldDefault, def)
	etcWriteTree(b, oldEtc, local)
	return oldDefault, oldEtc, newDefault
}

func BenchmarkDiffEtc(b *testing.B) {
	oldDefault, oldEtc, _ := etcBenchTrees(b, b.TempDir())
	for b.Loop() {
		if _, err := DiffEtc(oldDefault, oldEtc); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMergeEtc(b *testing.B) {
	dir := b.TempDir()
	oldDefault, oldEtc, newDefault := etcBenchTrees(b, dir)
	i := 0
	for b.Loop() {
		b.StopTimer()
		newEtc := filepath.Join(dir, fmt.Sprintf("new-etc-%d", i))
		i++
		etcWriteTree(b, newEtc, newDefault)
		b.StartTimer()
		if err := MergeEtc(oldDefault, oldEtc, newEtc); err != nil {
			b.Fatal(err)
		}
	}
}
