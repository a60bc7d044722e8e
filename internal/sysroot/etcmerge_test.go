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
