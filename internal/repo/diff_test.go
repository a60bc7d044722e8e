package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func TestDiffVectors(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-archive")
	big := []string{"/big"}
	for i := 0; i < 3000; i++ {
		big = append(big, fmt.Sprintf("/big/f%04d", i))
	}
	c1c2 := &DiffResult{
		Removed: []string{"/link", "/xattr.txt", "/bin", "/empty"},
		Added:   append(append([]string{"/multi.txt"}, big...), "/xdir", "/xdir/suid"),
	}
	c2c1 := &DiffResult{
		Removed: []string{"/multi.txt", "/big", "/xdir"},
		Added:   []string{"/link", "/xattr.txt", "/bin", "/bin/run.sh", "/empty"},
	}
	for _, tc := range []struct {
		a, b string
		want *DiffResult
	}{
		{"test/ref^", "test/ref", c1c2},
		{"test/ref", "test/ref^", c2c1},
		{"test/ref", coVectorC2, &DiffResult{}},
	} {
		t.Run(tc.a+" "+tc.b, func(t *testing.T) {
			t.Parallel()
			got, err := Diff(context.Background(), r, tc.a, tc.b)
			if err != nil {
				t.Fatalf("Diff(%s, %s) = %v", tc.a, tc.b, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Diff(%s, %s) (-want +got):\n%s", tc.a, tc.b, diff)
			}
		})
	}
}

// Modifications of every kind: content, file metadata, directory
// metadata, file replaced by a directory, the root's own metadata.
func TestDiffModified(t *testing.T) {
	t.Parallel()
	r := coNewRepo(t, ModeArchive)
	dir := filepath.Join(t.TempDir(), "tree")
	write := func(p, data string, mode os.FileMode) {
		full := filepath.Join(dir, p)
		coMust(t, os.MkdirAll(filepath.Dir(full), 0o755))
		coMust(t, os.WriteFile(full, []byte(data), mode))
		coMust(t, os.Chmod(full, mode))
	}
	write("a.txt", "a", 0o644)
	write("b.txt", "b", 0o644)
	write("gone", "bye", 0o644)
	write("t", "file, then a directory", 0o644)
	write("d/x", "x", 0o644)
	write("keep/k", "k", 0o644)
	coMust(t, os.Chmod(dir, 0o755))
	coCommitDir(t, r, dir, "test/ref", "A")

	write("a.txt", "A", 0o644)
	coMust(t, os.Chmod(filepath.Join(dir, "b.txt"), 0o600))
	coMust(t, os.Remove(filepath.Join(dir, "gone")))
	coMust(t, os.Remove(filepath.Join(dir, "t")))
	write("t/inner", "now a directory", 0o644)
	coMust(t, os.Chmod(filepath.Join(dir, "d"), 0o700))
	write("new/deep/f", "new", 0o644)
	coMust(t, os.Chmod(dir, 0o750))
	coCommitDir(t, r, dir, "test/ref", "B")

	got, err := Diff(context.Background(), r, "test/ref^", "test/ref")
	if err != nil {
		t.Fatalf("Diff() = %v", err)
	}
	want := &DiffResult{
		Modified: []string{"/", "/a.txt", "/b.txt", "/t", "/d"},
		Removed:  []string{"/gone"},
		Added:    []string{"/new", "/new/deep", "/new/deep/f"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Diff(A, B) (-want +got):\n%s", diff)
	}
	if _, err := Diff(context.Background(), r, "test/ref", "no/such/ref"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Diff(test/ref, no/such/ref) = %v, want ErrNotFound", err)
	}
}
