//go:build root

package compose

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// TestApplyUpper lays a hand-made overlayfs upper directory over a
// committed base: a whiteout deletes, an opaque directory replaces the
// base's, a new file adds, a changed file replaces, overlayfs's own
// xattrs are dropped, and the mount points of the chroot are skipped.
func TestApplyUpper(t *testing.T) {
	testutil.RequireRoot(t)
	ctx := context.Background()
	dir := t.TempDir()
	r, err := repo.Init(filepath.Join(dir, "repo"), repo.ModeBare)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tree := filepath.Join(dir, "tree")
	for p, c := range map[string]string{
		"usr/bin/keep": "keep\n", "usr/bin/gone": "gone\n", "usr/share/opq/old": "old\n",
		"usr/lib/os-release": "NAME=base\n",
	} {
		writeFile(t, filepath.Join(tree, p), c)
	}
	base, _, err := repo.CommitTree(ctx, r, repo.DirSource(tree), repo.CommitOptions{Branch: "base", Subject: "base"})
	if err != nil {
		t.Fatal(err)
	}
	bc, err := r.ReadCommit(base)
	if err != nil {
		t.Fatal(err)
	}

	upper := filepath.Join(dir, "upper")
	writeFile(t, filepath.Join(upper, "usr/lib/os-release"), "NAME=base\nLAYERED=1\n")
	writeFile(t, filepath.Join(upper, "usr/share/opq/new"), "new\n")
	writeFile(t, filepath.Join(upper, "usr/bin/added"), "added\n")
	if err := unix.Mknod(filepath.Join(upper, "usr/bin/gone"), unix.S_IFCHR, 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(upper, "usr/share/opq"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if err := unix.Lsetxattr(filepath.Join(upper, "usr/bin/added"), "trusted.overlay.origin", []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"etc", "proc", "var"} { // mount points
		if err := os.MkdirAll(filepath.Join(upper, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}

	res := &DeriveResult{Packages: []Package{{Name: "x", Version: "1"}}}
	if err := commitDerived(ctx, r, bc, base, upper, DeriveRequest{}, res); err != nil {
		t.Fatalf("commitDerived = %v", err)
	}
	got := map[string]ostree.Checksum{}
	err = repo.WalkCommit(ctx, r, res.Commit, func(e *repo.WalkEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Kind == repo.EntryFile {
			got[e.Path] = e.Checksum
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for p := range got {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	want := []string{"/usr/bin/added", "/usr/bin/keep", "/usr/lib/os-release", "/usr/share/opq/new"}
	if !slices.Equal(paths, want) {
		t.Errorf("derived tree files = %v, want %v (gone deleted, opq replaced, mount points skipped)", paths, want)
	}
	c, err := r.OpenContent(got["/usr/bin/added"])
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, x := range c.Info.Xattrs {
		t.Errorf("/usr/bin/added carries xattr %s, want overlayfs's own dropped", x.Name)
	}
	dc, err := r.ReadCommit(res.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if dc.Parent != base || dc.Timestamp != bc.Timestamp {
		t.Errorf("derived commit parent %s time %d, want the base %s and its time %d", dc.Parent, dc.Timestamp, base, bc.Timestamp)
	}
	if res.Stats.ContentWritten != 3 {
		t.Errorf("ContentWritten = %d, want 3 (os-release, new, added)", res.Stats.ContentWritten)
	}
}
