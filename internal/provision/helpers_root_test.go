//go:build root

package provision_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
)

// SSH public keys the tests provision.
const (
	key1 = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGr6yLtQ8JwPfwq5JSd+8dMhU9gjrSM1hlq+Gm2YJ6Ej core@laptop"
	key2 = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQDtest admin@host"
)

// newRoot copies testdata/root, a small Debian-like tree (passwd, group, shadow, login.defs,
// skel, /home -> var/home, one unit in usr/lib), into a new directory.
func newRoot(t testing.TB) string {
	t.Helper()
	tmp := t.TempDir()
	// Ignition writes SSH keys as the user (setfsuid), who must be able to reach the tree.
	for _, d := range []string{filepath.Dir(tmp), tmp} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dst := filepath.Join(tmp, "root")
	src := "testdata/root"
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, data, info.Mode().Perm())
		}
	})
	if err != nil {
		t.Fatalf("copying the test root: %v", err)
	}
	for _, d := range []string{"var/home", "root"} {
		if err := os.MkdirAll(filepath.Join(dst, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"etc/shadow", "etc/gshadow"} {
		if err := os.Chmod(filepath.Join(dst, f), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// node is one path of a tree as the comparisons see it.
type node struct {
	Kind  string // dir, file, symlink
	Mode  fs.FileMode
	UID   uint32
	GID   uint32
	Data  string // file: the content when short, else its SHA-256
	Links uint64 // file: hard link count
}

func (n node) String() string {
	return fmt.Sprintf("%s %o %d:%d %q nlink=%d", n.Kind, n.Mode, n.UID, n.GID, n.Data, n.Links)
}

// snapshot maps every path of a tree (relative, with a leading /) to its node.
func snapshot(t testing.TB, root string) map[string]node {
	t.Helper()
	out := map[string]node{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		n := node{Mode: info.Mode().Perm() | info.Mode()&(fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky), UID: st.Uid, GID: st.Gid}
		switch {
		case d.IsDir():
			n.Kind = "dir"
		case info.Mode()&fs.ModeSymlink != 0:
			n.Kind, n.Mode = "symlink", 0
			n.Data, _ = os.Readlink(p)
		default:
			n.Kind, n.Links = "file", st.Nlink
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if len(data) <= 4096 {
				n.Data = string(data)
			} else {
				sum := sha256.Sum256(data)
				n.Data = "sha256:" + hex.EncodeToString(sum[:])
			}
		}
		out["/"+filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatalf("reading tree %s: %v", root, err)
	}
	return out
}

// diffTrees lists the paths whose nodes differ, sorted.
func diffTrees(want, got map[string]node) []string {
	var out []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			out = append(out, fmt.Sprintf("%s: only in want: %s", p, w))
		case g != w:
			out = append(out, fmt.Sprintf("%s: want %s, got %s", p, w, g))
		}
	}
	for p, g := range got {
		if _, ok := want[p]; !ok {
			out = append(out, fmt.Sprintf("%s: only in got: %s", p, g))
		}
	}
	sort.Strings(out)
	return out
}
