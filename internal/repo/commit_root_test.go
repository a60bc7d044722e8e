//go:build root

package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestCommitTree2VectorsRoot commits tree1 then tree2 from directories
// with their real owners (uid 1000, setuid): C1 then C2 in every mode.
func TestCommitTree2VectorsRoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tree1, tree2 := cmWriteDir(t, cmTree1(), true), cmWriteDir(t, cmTree2(), true)
	for _, mode := range []Mode{ModeArchive, ModeBare, ModeBareUser} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			r := cmNewRepo(t, mode)
			if c, _ := cmCommit(t, r, DirSource(tree1), cmOptsC1()); c.String() != cmC1 {
				t.Fatalf("CommitTree(tree1, %s) = %s, want %s", mode, c, cmC1)
			}
			c2, _ := cmCommit(t, r, DirSource(tree2), cmOptsC2())
			if c2.String() != cmC2 {
				t.Fatalf("CommitTree(tree2, %s) = %s, want %s", mode, c2, cmC2)
			}
			cmVerifyContent(t, r, c2)
			if mode == ModeBare {
				// bare objects carry the real owner and mode.
				var st unix.Stat_t
				p := r.ObjectPath(cmObject("96d8618b7cd3ee3b22845a61fa93853ee1ce7c2899f9a90ea40ebe9ebd479b87"))
				if err := unix.Stat(p, &st); err != nil || st.Uid != 1000 || st.Mode&0o7777 != 0o4755 {
					t.Errorf("bare object of /xdir/suid: uid %d mode %#o (%v), want 1000 04755", st.Uid, st.Mode&0o7777, err)
				}
			}
		})
	}
}

// TestCommitTrustedXattrsRoot: xattrs outside user.* (trusted.*, which only
// root may set) are hashed like any other, in canonical order.
func TestCommitTrustedXattrsRoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	es := []cmEntry{
		{path: "", kind: 'd', mode: 0o755},
		{path: "f", kind: 'f', mode: 0o644, data: "x", xattrs: [][2]string{{"user.b", "2"}, {"trusted.a", "1"}}},
		{path: "d", kind: 'd', mode: 0o755, xattrs: [][2]string{{"trusted.dir", "yes"}}},
	}
	dir := cmWriteDir(t, es, true)
	r := cmNewRepo(t, ModeArchive)
	c, _ := cmCommit(t, r, DirSource(dir), CommitOptions{Timestamp: time.Unix(1, 0)})
	want := cmCommitOf(t, TarSource(bytes.NewReader(cmWriteTar(t, es))))
	if c != want {
		t.Errorf("CommitTree(dir with trusted.* xattrs) = %s, want %s as from the same tree in tar", c, want)
	}
	ct, err := r.OpenContent(cmFileSum(t, r, c, "/f"))
	if err != nil {
		t.Fatal(err)
	}
	defer ct.Close()
	if got := fmt.Sprint(ct.Info.Xattrs); got != "[{trusted.a [49]} {user.b [50]}]" {
		t.Errorf("xattrs of /f = %s, want trusted.a then user.b", got)
	}
}

func cmCommitOf(t *testing.T, src TreeSource) interface{ String() string } {
	t.Helper()
	r := cmNewRepo(t, ModeArchive)
	c, _ := cmCommit(t, r, src, CommitOptions{Timestamp: time.Unix(1, 0)})
	return c
}

// TestCommitUnreadableRoot runs a commit as nobody (a helper process with
// dropped credentials) over a tree with an unreadable file, then an
// unreadable directory: the commit fails naming the path, and the
// repository is unchanged.
func TestCommitUnreadableRoot(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	top := t.TempDir()
	for p := top; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755) // let nobody reach the test's files
	}
	helper := filepath.Join(top, "helper")
	cmCopyFile(t, os.Args[0], helper, 0o755)
	for _, tc := range []struct {
		name, path string
		mode       os.FileMode
	}{
		{"file", "bin/run.sh", 0},
		{"directory", "bin", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(top, tc.name)
			os.Mkdir(dir, 0o755)
			tree := filepath.Join(dir, "tree")
			os.Rename(cmWriteDir(t, cmTree1(), false), tree)
			r, err := Init(filepath.Join(dir, "repo"), ModeArchive)
			if err != nil {
				t.Fatal(err)
			}
			r.SetFsync(false)
			defer r.Close()
			cmCommit(t, r, DirSource(tree), CommitOptions{Branch: "b", Timestamp: time.Unix(1, 0)})
			before := cmRepoState(t, r)
			filepath.Walk(dir, func(p string, _ os.FileInfo, _ error) error { return os.Lchown(p, 65534, 65534) })
			if err := os.Chmod(filepath.Join(tree, tc.path), tc.mode); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(helper, "-test.run=^TestCommitHelperProcess$")
			cmd.Env = append(os.Environ(), "STRATA_COMMIT_HELPER_REPO="+r.Path(), "STRATA_COMMIT_HELPER_TREE="+tree)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			out, _ := cmd.CombinedOutput()
			want := filepath.Join(tree, tc.path) + ": permission denied"
			if !strings.Contains(string(out), want) {
				t.Errorf("commit as nobody printed %q, want it to contain %q", out, want)
			}
			if after := cmRepoState(t, r); after != before {
				t.Errorf("repository after failed commit = %s, want unchanged %s", after, before)
			}
		})
	}
}

// TestCommitHelperProcess is the body of TestCommitUnreadableRoot's helper
// process; it does nothing in a normal test run.
func TestCommitHelperProcess(t *testing.T) {
	repoPath := os.Getenv("STRATA_COMMIT_HELPER_REPO")
	if repoPath == "" {
		return
	}
	r, err := Open(repoPath)
	if err != nil {
		fmt.Println("open error:", err)
		return
	}
	defer r.Close()
	_, _, err = CommitTree(context.Background(), r, DirSource(os.Getenv("STRATA_COMMIT_HELPER_TREE")), CommitOptions{Branch: "b", Timestamp: time.Unix(2, 0)})
	fmt.Println("commit error:", err)
}

func cmCopyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// cmObject names the content object with checksum hex.
func cmObject(hex string) ostree.ObjectName {
	c, err := ostree.ParseChecksum(hex)
	if err != nil {
		panic(err)
	}
	return ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
}

// cmFileSum returns the content checksum of path in commit c.
func cmFileSum(t testing.TB, r *Repo, c ostree.Checksum, path string) ostree.Checksum {
	t.Helper()
	e, err := Lookup(r, c, path)
	if err != nil {
		t.Fatalf("Lookup(%s, %s) = %v", c, path, err)
	}
	return e.Checksum
}
