//go:build peer && root

package interop

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// kind is the type of a tree entry.
type kind int

const (
	kindDir kind = iota
	kindFile
	kindSymlink
	kindHardlink // a second name for the file at target
)

// xattr is one extended attribute, set in the order listed.
type xattr struct{ name, value string }

// entry describes one path of a generated tree. Owners are applied before modes, because chown
// clears setuid and setgid bits.
type entry struct {
	path     string // relative, "/"-separated
	kind     kind
	data     []byte // file content
	target   string // symlink target, or the hardlink's existing path
	mode     uint32 // permission bits with setuid/setgid/sticky
	uid, gid int
	xattrs   []xattr
}

// bigFileSize is over 8 MiB and not a multiple of any block or buffer size.
const bigFileSize = 9<<20 + 4099

// randomBytes returns n incompressible bytes, the same for the same seed.
func randomBytes(seed uint64, n int) []byte {
	var key [32]byte
	key[0] = byte(seed)
	key[1] = byte(seed >> 8)
	b := make([]byte, n)
	rand.NewChaCha8(key).Read(b)
	return b
}

// awkwardEntries lists a tree with every case OSTree stores that is easy to get wrong: empty and
// large files, hardlinks, odd symlinks, empty and restrictive directories, setuid/setgid/sticky
// bits, foreign owners, xattrs in several namespaces set out of order (one empty, which OSTree
// drops), UTF-8 and control characters in names, 255-byte names, deep nesting, and a directory
// whose dirtree needs 4-byte GVariant offsets.
func awkwardEntries() []entry {
	file := func(path, data string, mode uint32) entry {
		return entry{path: path, kind: kindFile, data: []byte(data), mode: mode}
	}
	dir := func(path string, mode uint32) entry { return entry{path: path, kind: kindDir, mode: mode} }
	link := func(path, target string) entry { return entry{path: path, kind: kindSymlink, target: target} }

	es := []entry{
		file("empty", "", 0o644),
		file("hello.txt", "hello world\n", 0o644),
		{path: "big.bin", kind: kindFile, data: randomBytes(1, bigFileSize), mode: 0o644},
		file("hardlink-a", "linked\n", 0o644),
		{path: "hardlink-b", kind: kindHardlink, target: "hardlink-a"},
		file("noperm", "noperm\n", 0o000),
		file("world", "world\n", 0o777),
		file("suid", "suid\n", 0o4755),
		{path: "sgid", kind: kindFile, data: []byte("sgid\n"), mode: 0o2755, gid: 65534},
		file("sticky", "sticky\n", 0o1644),
		{path: "suid-user", kind: kindFile, data: []byte("suid user\n"), mode: 0o4750, uid: 1000, gid: 1000},
		{path: "nobody", kind: kindFile, data: []byte("nobody\n"), mode: 0o640, uid: 65534, gid: 65534},
		{path: "mixed-owner", kind: kindFile, data: []byte("mixed\n"), mode: 0o644, uid: 1000, gid: 65534},
		{path: "xattrs", kind: kindFile, data: []byte("xattrs\n"), mode: 0o644, xattrs: []xattr{
			{"user.zzz", "last"}, {"user.aaa", "first"}, {"user.empty", ""}, {"user.mmm", "middle\x00with nul"},
			{"trusted.strata", "root only"}, {"security.strata", "sec"},
		}},
		link("link-dangling", "does/not/exist"),
		link("link-abs", "/etc/passwd"),
		link("link-dir", "dirs/private"),
		{path: "link-owned", kind: kindSymlink, target: "hello.txt", uid: 1000, gid: 1000},
		{path: "link-xattr", kind: kindSymlink, target: "hello.txt", xattrs: []xattr{{"trusted.link", "l"}}},
		dir("dirs", 0o755),
		dir("dirs/empty", 0o755),
		dir("dirs/private", 0o700),
		file("dirs/private/secret", "secret\n", 0o600),
		dir("dirs/readonly", 0o500),
		file("dirs/readonly/file", "read only\n", 0o444),
		dir("dirs/readonly/empty", 0o555),
		dir("dirs/sticky", 0o1777),
		file("dirs/sticky/tmpfile", "tmp\n", 0o666),
		{path: "dirs/setgid", kind: kindDir, mode: 0o2775, gid: 1000},
		{path: "dirs/owned", kind: kindDir, mode: 0o750, uid: 1000, gid: 1000, xattrs: []xattr{
			{"user.dirattr", "d"}, {"trusted.dir", "t"}, {"user.a", "a"},
		}},
		file("dirs/owned/mine", "mine\n", 0o640),
		dir("names", 0o755),
		file("names/é", "e acute\n", 0o644),
		file("names/日本", "nihon\n", 0o644),
		file("names/with space", "space\n", 0o644),
		file("names/new\nline", "newline\n", 0o644),
		file("names/tab\tname", "tab\n", 0o644),
		file("names/.hidden", "hidden\n", 0o644),
		file("names/-dash", "dash\n", 0o644),
		file("names/"+strings.Repeat("a", 255), "long ascii\n", 0o644),
		file("names/"+strings.Repeat("日", 85), "long utf-8\n", 0o644),
		dir("names/"+strings.Repeat("d", 255), 0o755),
		link("names/"+strings.Repeat("l", 255), strings.Repeat("t", 1000)),
		dir("deep", 0o755),
		dir("wide", 0o755),
	}
	p := "deep"
	for i := 1; i <= 50; i++ {
		p += fmt.Sprintf("/d%02d", i)
		es = append(es, dir(p, 0o755))
	}
	es = append(es, file(p+"/leaf", "at the bottom\n", 0o644))
	for i := range 5000 {
		es = append(es, file(fmt.Sprintf("wide/f%04d", i), fmt.Sprintf("wide %d\n", i%100), 0o644))
	}
	return es
}

// smallEntries is a second, small tree, committed on top of the awkward one: it shares some
// content with it and changes the rest.
func smallEntries() []entry {
	return []entry{
		{path: "hello.txt", kind: kindFile, data: []byte("hello world\n"), mode: 0o644},
		{path: "changed", kind: kindFile, data: []byte("second commit\n"), mode: 0o600, uid: 1000},
		{path: "sub", kind: kindDir, mode: 0o755},
		{path: "sub/link", kind: kindSymlink, target: "../hello.txt"},
	}
}

// writeTree creates the entries under root, which must not exist yet. Directories get their final
// owner, mode and xattrs last, deepest first, so read-only directories can be filled.
func writeTree(root string, es []entry) error {
	if err := os.Mkdir(root, 0o755); err != nil {
		return fmt.Errorf("creating tree root: %w", err)
	}
	var dirs []entry
	for _, e := range es {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		var err error
		switch e.kind {
		case kindDir:
			err = os.Mkdir(p, 0o755)
			dirs = append(dirs, e)
		case kindFile:
			err = writeFile(p, e)
		case kindSymlink:
			err = os.Symlink(e.target, p)
			if err == nil {
				err = unix.Lchown(p, e.uid, e.gid)
			}
			if err == nil {
				err = setXattrs(p, e.xattrs)
			}
		case kindHardlink:
			err = os.Link(filepath.Join(root, filepath.FromSlash(e.target)), p)
		}
		if err != nil {
			return fmt.Errorf("creating %q: %w", e.path, err)
		}
	}
	slices.Reverse(dirs)
	for _, e := range dirs {
		if err := applyMeta(filepath.Join(root, filepath.FromSlash(e.path)), e); err != nil {
			return fmt.Errorf("setting metadata of directory %q: %w", e.path, err)
		}
	}
	return nil
}

func writeFile(p string, e entry) error {
	if err := os.WriteFile(p, e.data, 0o600); err != nil {
		return err
	}
	return applyMeta(p, e)
}

// applyMeta sets owner, then mode (chown would clear setuid/setgid), then xattrs.
func applyMeta(p string, e entry) error {
	if err := os.Lchown(p, e.uid, e.gid); err != nil {
		return err
	}
	if err := unix.Chmod(p, e.mode); err != nil {
		return fmt.Errorf("chmod %o: %w", e.mode, err)
	}
	return setXattrs(p, e.xattrs)
}

func setXattrs(p string, xs []xattr) error {
	for _, x := range xs {
		if err := unix.Lsetxattr(p, x.name, []byte(x.value), 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", x.name, err)
		}
	}
	return nil
}

// sharedTree builds a tree once per test run under the scratch directory.
func sharedTree(name string, entries func() []entry) func() (string, error) {
	return sync.OnceValues(func() (string, error) {
		dir := filepath.Join(scratch, "trees", name)
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", err
		}
		if err := writeTree(dir, entries()); err != nil {
			return "", fmt.Errorf("generating tree %s: %w", name, err)
		}
		return dir, nil
	})
}

var (
	awkwardTree = sharedTree("awkward", awkwardEntries)
	smallTree   = sharedTree("small", smallEntries)
)

// TestAwkwardTreeCoverage checks that the awkward tree exercises what it claims to, on ostree's
// commit of it: dirtrees whose GVariant framing offsets are 1, 2 and 4 bytes wide (docs/formats/gvariant.md),
// which depends on their serialized sizes.
func TestAwkwardTreeCoverage(t *testing.T) {
	peer(t)
	t.Parallel()
	p := pairFor(t, "archive")
	commit := p.ostreeCommit(t, 0)
	tests := []struct {
		name     string
		dir      string
		min, max int64 // serialized size range
	}{
		{name: "1-byte offsets", dir: "/dirs/private", min: 1, max: 0xff},
		{name: "2-byte offsets", dir: "/", min: 0x100, max: 0xffff},
		{name: "4-byte offsets", dir: "/wide", min: 0x10000, max: 0xffffffff},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, path := objectOf(t, p.ostree, "archive", commit, tc.dir, true)
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Size() < tc.min || fi.Size() > tc.max {
				t.Errorf("dirtree of %s is %d bytes, want %d..%d", tc.dir, fi.Size(), tc.min, tc.max)
			}
		})
	}
}
