//go:build root

package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestFsckNamesEveryBadObjectBare is the fault matrix of fault_test.go in
// bare mode, whose objects carry real owners.
func TestFsckNamesEveryBadObjectBare(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	runFaultMatrix(t, ModeBare)
}

// mountSmall mounts a small filesystem at a new directory and unmounts it
// when the test ends: tmpfs of the given size, or, for "ext4", a loop
// mounted ext4 image of that size (tmpfs lacks the user xattrs bare-user
// needs on older kernels).
func mountSmall(t *testing.T, fstype string, mib int) string {
	t.Helper()
	testutil.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch fstype {
	case "tmpfs":
		cmd = exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%dm", mib), "tmpfs", dir)
	case "ext4":
		img := filepath.Join(t.TempDir(), "fs.img")
		f, err := os.Create(img)
		if err == nil {
			err = f.Truncate(int64(mib) << 20)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		mkfs := testutil.RequireTool(t, "mkfs.ext4", "e2fsprogs")
		if out, err := exec.Command(mkfs, "-q", img).CombinedOutput(); err != nil {
			t.Fatalf("mkfs.ext4: %v\n%s", err, out)
		}
		cmd = exec.Command("mount", "-o", "loop", img, dir)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v\n%s", dir, err, out)
		}
	})
	return dir
}

// fillRandom writes n bytes of incompressible data to p.
func fillRandom(t *testing.T, p string, n int, seed uint64) error {
	t.Helper()
	b := make([]byte, n)
	x := seed*0x9e3779b97f4a7c15 | 1
	for i := 0; i+8 <= n; i += 8 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		for j := 0; j < 8; j++ {
			b[i+j] = byte(x >> (8 * j))
		}
	}
	return os.WriteFile(p, b, 0o644)
}

// TestDiskFull commits a tree bigger than the free space: the commit
// fails saying so, the ref does not move, nothing is left staged, fsck is
// clean; once space is freed the same commit succeeds.
func TestDiskFull(t *testing.T) {
	testutil.RequireRoot(t)
	t.Parallel()
	tests := []struct {
		name              string
		fstype            string
		mode              Mode
		fsMiB, ballastMiB int
		treeFiles         int // of 256 KiB each
	}{
		{name: "archive on tmpfs", fstype: "tmpfs", mode: ModeArchive, fsMiB: 8, ballastMiB: 5, treeFiles: 20},
		{name: "bare-user-only on tmpfs", fstype: "tmpfs", mode: ModeBareUserOnly, fsMiB: 8, ballastMiB: 5, treeFiles: 20},
		{name: "bare-user on ext4", fstype: "ext4", mode: ModeBareUser, fsMiB: 32, ballastMiB: 16, treeFiles: 40},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mnt := mountSmall(t, tc.fstype, tc.fsMiB)
			tree := filepath.Join(t.TempDir(), "tree")
			if err := os.MkdirAll(filepath.Join(tree, "data"), 0o755); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < tc.treeFiles; i++ {
				if err := fillRandom(t, filepath.Join(tree, "data", fmt.Sprintf("f%03d", i)), 256<<10, uint64(i)+1); err != nil {
					t.Fatal(err)
				}
			}
			r, err := Init(filepath.Join(mnt, "repo"), tc.mode)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			c0 := mustWriteTestTree(t, r, "main", ostree.Checksum{}, nil, map[string]string{"README": "small\n"})
			ballast := filepath.Join(mnt, "ballast")
			if err := fillRandom(t, ballast, tc.ballastMiB<<20, 99); err != nil {
				t.Fatalf("writing the ballast: %v", err)
			}

			_, err = commitTestDir(context.Background(), r, tree, "main", c0.Commit, 1700000100, nil)
			if !errors.Is(err, unix.ENOSPC) || !strings.Contains(err.Error(), "no space left on device") {
				t.Fatalf("commit of a tree bigger than the free space = %v, want an error saying no space left on device", err)
			}
			if got, err := r.ReadRef("", "main"); err != nil || got != c0.Commit {
				t.Fatalf("after the failed commit ref main = %s, %v; want %s", got, err, c0.Commit)
			}
			requireFsckClean(t, r)
			if left := stagingDirs(t, r.Path()); len(left) != 0 {
				t.Errorf("the failed commit left %v in tmp/", left)
			}

			if err := os.Remove(ballast); err != nil {
				t.Fatal(err)
			}
			c, err := commitTestDir(context.Background(), r, tree, "main", c0.Commit, 1700000100, nil)
			if err != nil {
				t.Fatalf("commit after freeing space = %v", err)
			}
			if got, err := r.ReadRef("", "main"); err != nil || got != c {
				t.Fatalf("ref main = %s, %v; want the new commit %s", got, err, c)
			}
			rep := requireFsckClean(t, r)
			if rep.ObjectsByType[ostree.ObjectFile] < int64(tc.treeFiles) {
				t.Errorf("after the commit the repository holds %d content objects, want at least %d", rep.ObjectsByType[ostree.ObjectFile], tc.treeFiles)
			}
		})
	}
}
