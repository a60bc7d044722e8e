//go:build peer && root

package interop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// corruptEntries is a small tree for the corruption tests: a file large enough that its middle
// byte is payload in every mode, and a subdirectory whose dirtree can be damaged while the root
// stays readable.
func corruptEntries() []entry {
	return []entry{
		{path: "a.txt", kind: kindFile, data: []byte("a\n"), mode: 0o644},
		{path: "payload", kind: kindFile, data: randomBytes(2, 64<<10), mode: 0o644},
		{path: "sub", kind: kindDir, mode: 0o755},
		{path: "sub/c.txt", kind: kindFile, data: []byte("c\n"), mode: 0o644},
		{path: "sub/d.txt", kind: kindFile, data: []byte("d\n"), mode: 0o644},
		{path: "sub/deeper", kind: kindDir, mode: 0o755},
		{path: "sub/deeper/e", kind: kindFile, data: []byte("e\n"), mode: 0o644},
	}
}

var corruptTree = sharedTree("corrupt", corruptEntries)

// damage is one way of breaking an object file.
type damage struct {
	name  string
	apply func(path string) error
}

var damages = []damage{
	{name: "flipped byte", apply: func(p string) error {
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b[len(b)/2] ^= 0xff
		return os.WriteFile(p, b, 0)
	}},
	{name: "truncated", apply: func(p string) error {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		return os.Truncate(p, fi.Size()/2)
	}},
	{name: "deleted", apply: os.Remove},
}

// TestCorruptionDetected damages one content object and one dirtree in repositories written by
// each tool, in every mode, and requires `strata repo fsck` to fail naming the object,
// `strata repo checkout` to fail naming it and leave no destination behind, and (as a sanity
// check of the damage) `ostree fsck` to fail too.
func TestCorruptionDetected(t *testing.T) {
	peer(t)
	t.Parallel()
	tree, err := corruptTree()
	if err != nil {
		t.Fatal(err)
	}
	writers := []struct {
		name   string
		commit func(t *testing.T, repo, mode string) string
	}{
		{name: "strata", commit: func(t *testing.T, repo, mode string) string {
			mustInitRepo(t, "strata", repo, mode)
			c, err := checksumOut(mustStrata(t, "repo", "commit", "--repo", repo, "--branch", "b", "--tree", tree,
				"--subject", "s", "--timestamp", "1672531200"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
		{name: "ostree", commit: func(t *testing.T, repo, mode string) string {
			mustInitRepo(t, "ostree", repo, mode)
			c, err := checksumOut(mustOstree(t, "--repo="+repo, "commit", "-b", "b", "--tree=dir="+tree,
				"-s", "s", "--timestamp=@1672531200"))
			if err != nil {
				t.Fatal(err)
			}
			return c
		}},
	}
	objects := []struct {
		name string
		path string // path in the tree whose object is damaged
		dir  bool   // damage the directory's dirtree, not a content object
	}{
		{name: "content object", path: "/payload"},
		{name: "dirtree", path: "/sub", dir: true},
	}
	for _, w := range writers {
		for _, mode := range modes {
			for _, obj := range objects {
				for _, d := range damages {
					t.Run(fmt.Sprintf("%s/%s/%s/%s", w.name, mode, obj.name, d.name), func(t *testing.T) {
						t.Parallel()
						dir := t.TempDir()
						repo := filepath.Join(dir, "repo")
						commit := w.commit(t, repo, mode)
						csum, path := objectOf(t, repo, mode, commit, obj.path, obj.dir)
						if err := d.apply(path); err != nil {
							t.Fatalf("damaging %s: %v", path, err)
						}
						checkCorruptionReported(t, repo, commit, csum, filepath.Join(dir, "co"))
					})
				}
			}
		}
	}
}

// objectOf returns the checksum and loose file of the object behind a path of a commit, as
// `ostree ls -C` reports it: the content object of a file, or the dirtree of a directory.
func objectOf(t *testing.T, repo, mode, commit, path string, dir bool) (string, string) {
	t.Helper()
	out := mustOstree(t, "--repo="+repo, "ls", "-d", "-C", commit, path)
	fields := strings.Fields(out)
	// -00644 0 0 65536 CSUM /payload   or   d00755 0 0 0 TREE META /sub
	if len(fields) < 6 {
		t.Fatalf("ostree ls -d -C %s = %q, want mode, owner, size, checksum(s) and path", path, out)
	}
	csum, suffix := fields[4], ".file"
	if dir {
		suffix = ".dirtree"
	} else if mode == "archive" {
		suffix = ".filez"
	}
	return csum, filepath.Join(repo, "objects", csum[:2], csum[2:]+suffix)
}

// checkCorruptionReported runs both fsck implementations and strata's checkout on a damaged
// repository.
func checkCorruptionReported(t *testing.T, repo, commit, csum, dest string) {
	t.Helper()
	res, err := run(strataBin, "repo", "fsck", "--repo", repo)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case res.code == 0:
		t.Errorf("%s = exit 0, want failure; output:\n%s", res.cmdline, res.output())
	case !strings.Contains(res.output(), csum):
		t.Errorf("%s does not name the damaged object %s; output:\n%s", res.cmdline, csum, res.output())
	}

	res, err = run(strataBin, "repo", "checkout", "--repo", repo, commit, dest)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case res.code == 0:
		t.Errorf("%s = exit 0, want failure", res.cmdline)
	case !strings.Contains(res.output(), csum):
		t.Errorf("%s does not name the damaged object %s; output:\n%s", res.cmdline, csum, res.output())
	}
	if _, err := os.Lstat(dest); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("after the failed %s, %s exists (err %v), want no partial destination", res.cmdline, dest, err)
	}

	// Last: ostree fsck may mark the commit partial.
	res, err = run("ostree", "--repo="+repo, "fsck")
	if err != nil {
		t.Fatal(err)
	}
	if res.code == 0 {
		t.Errorf("%s = exit 0, want failure (is the damage real?); output:\n%s", res.cmdline, res.output())
	}
}
