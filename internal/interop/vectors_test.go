//go:build peer && root

package interop

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// Checksums of docs/formats/vectors.md.
const (
	vectorC1             = "4e5608541a7900d8b604541ec7ffa70700a6dd3aabc7e71e145a25ac5f306a28"
	vectorC1BareUserOnly = "e4e6a9e4287801cad9212de45268cfe0615ad4fde9fec20b4ff7b590ed73b94d"
	vectorC2             = "33551e1f5b855ffea3595aed5983953c687ec4e2f96f3d6d00648ffdd647c194"
	vectorC2RootTree     = "002ec500f99fc58769d5b4731e0aaae0cb667a4da5f0e4972ebb8921ad681c2c"
	vectorRootMeta       = "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
)

// python3 is the interpreter the vector README names; PATH may hold another one first.
const python3 = "/usr/bin/python3"

// vectorTrees regenerates tree1 and tree2 with the vectors' own scripts, as their README says.
func vectorTrees(t *testing.T, vec string) (tree1, tree2 string) {
	t.Helper()
	if _, err := os.Stat(python3); err != nil {
		t.Fatalf("%s is needed to regenerate the vector trees: install the Debian package python3 (%v)", python3, err)
	}
	dir := t.TempDir()
	tree1, tree2 = filepath.Join(dir, "tree1"), filepath.Join(dir, "tree2")
	if _, err := runOK(python3, filepath.Join(vec, "inputs", "mktree.py"), tree1); err != nil {
		t.Fatal(err)
	}
	if _, err := runOK(python3, filepath.Join(vec, "inputs", "mktree2.py"), tree2); err != nil {
		t.Fatal(err)
	}
	// chown -R 1000:1000 tree2/xdir && chmod 4755 tree2/xdir/suid
	err := filepath.WalkDir(filepath.Join(tree2, "xdir"), func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 1000, 1000)
	})
	if err != nil {
		t.Fatalf("chown tree2/xdir: %v", err)
	}
	if err := unix.Chmod(filepath.Join(tree2, "xdir", "suid"), 0o4755); err != nil {
		t.Fatal(err)
	}
	return tree1, tree2
}

// TestVectorsReproduced commits the vector trees with strata using the vector parameters
// (docs/formats/vectors.md) and compares the result with the repositories ostree wrote: commit C1 must have the
// same checksum, and every object strata wrote for C1 and for tree2 must equal ostree's.
//
// C2 itself cannot be reproduced through the CLI: its metadata has uint64, boolean, bytes and
// int32 values, and `--metadata K=V` makes strings. The C2 check therefore commits tree2 with
// string metadata and compares the tree objects (root dirtree 002ec500…) and its parent link.
func TestVectorsReproduced(t *testing.T) {
	peer(t)
	t.Parallel()
	vec := testutil.Vectors(t)
	tree1, tree2 := vectorTrees(t, vec)
	tests := []struct {
		mode    string
		vecRepo string // "" if the vectors hold no repository of this mode
		c1      string
	}{
		{mode: "archive", vecRepo: "repo-archive", c1: vectorC1},
		{mode: "bare-user", vecRepo: "repo-bare-user", c1: vectorC1},
		{mode: "bare", c1: vectorC1},
		{mode: "bare-user-only", c1: vectorC1BareUserOnly},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			t.Parallel()
			repo := filepath.Join(t.TempDir(), "repo")
			mustStrata(t, "repo", "init", "--repo", repo, "--mode", tc.mode)
			c1, err := checksumOut(mustStrata(t, "repo", "commit", "--repo", repo, "--branch", "test/ref",
				"--tree", tree1, "--subject", "Test subject", "--body", "Test body",
				"--timestamp", "1672531200", "--metadata", "version=1.0"))
			if err != nil {
				t.Fatal(err)
			}
			if c1 != tc.c1 {
				t.Errorf("strata repo commit (tree1) = %s, want C1 %s", c1, tc.c1)
			}
			c2, err := checksumOut(mustStrata(t, "repo", "commit", "--repo", repo, "--branch", "test/ref",
				"--tree", tree2, "--subject", "Second", "--timestamp", "1672617600", "--metadata", "version=2.0"))
			if err != nil {
				t.Fatal(err)
			}
			commit, err := readCommit(repo, mustChecksum(t, c2))
			if err != nil {
				t.Fatal(err)
			}
			if got := commit.Parent.String(); got != c1 {
				t.Errorf("parent of the tree2 commit = %s, want %s", got, c1)
			}
			if tc.mode != "bare-user-only" {
				if got := commit.RootTree.String(); got != vectorC2RootTree {
					t.Errorf("root dirtree of the tree2 commit = %s, want %s", got, vectorC2RootTree)
				}
				if got := commit.RootMeta.String(); got != vectorRootMeta {
					t.Errorf("root dirmeta of the tree2 commit = %s, want %s", got, vectorRootMeta)
				}
			}
			if tc.vecRepo == "" {
				return
			}
			vrepo := filepath.Join(vec, tc.vecRepo)
			t.Run("C1 objects", func(t *testing.T) {
				compareReachable(t, tc.mode, repo, mustChecksum(t, c1), vrepo, mustChecksum(t, vectorC1), true)
			})
			t.Run("tree2 objects", func(t *testing.T) {
				compareReachable(t, tc.mode, repo, mustChecksum(t, c2), vrepo, mustChecksum(t, vectorC2), false)
			})
		})
	}
}

func mustChecksum(t *testing.T, s string) ostree.Checksum {
	t.Helper()
	c, err := ostree.ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// compareReachable requires the objects reachable from got in repo to be the objects reachable
// from want in vrepo, each equal as compareObject defines. The commit objects themselves are
// compared only if withCommit.
func compareReachable(t *testing.T, mode, repo string, got ostree.Checksum, vrepo string, want ostree.Checksum, withCommit bool) {
	t.Helper()
	archive := mode == "archive"
	gotObjs, err := reachable(repo, got, archive)
	if err != nil {
		t.Fatalf("walking strata's commit: %v", err)
	}
	wantObjs, err := reachable(vrepo, want, archive)
	if err != nil {
		t.Fatalf("walking the reference commit: %v", err)
	}
	if !withCommit {
		delete(gotObjs, ostree.ObjectName{Checksum: got, Type: ostree.ObjectCommit}.String())
		delete(wantObjs, ostree.ObjectName{Checksum: want, Type: ostree.ObjectCommit}.String())
	}
	for _, k := range slices.Sorted(maps.Keys(wantObjs)) {
		if _, ok := gotObjs[k]; !ok {
			t.Errorf("object %s: missing from strata's commit", k)
		}
	}
	filez, sameFilez := 0, 0
	for _, k := range slices.Sorted(maps.Keys(gotObjs)) {
		n := gotObjs[k]
		if _, ok := wantObjs[k]; !ok {
			t.Errorf("object %s: in strata's commit, not in the reference commit", k)
			continue
		}
		got, want := objectPath(repo, n.Checksum, n.Type, archive), objectPath(vrepo, n.Checksum, n.Type, archive)
		if err := compareObject(mode, got, want, n.Type); err != nil {
			t.Errorf("object %s: %v", k, err)
			continue
		}
		if archive && n.Type == ostree.ObjectFile {
			filez++
			if sameFile(got, want) {
				sameFilez++
			}
		}
	}
	switch {
	case t.Failed():
	case filez > 0:
		t.Logf("%d objects equal; %d of %d .filez files byte-identical (the others differ only in their deflate streams)",
			len(gotObjs), sameFilez, filez)
	default:
		t.Logf("%d objects equal", len(gotObjs))
	}
}

// sameFile reports whether two files have the same bytes.
func sameFile(a, b string) bool {
	x, err := os.ReadFile(a)
	if err != nil {
		return false
	}
	y, err := os.ReadFile(b)
	return err == nil && bytes.Equal(x, y)
}
