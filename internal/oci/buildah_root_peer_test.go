//go:build root && peer

package oci

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// TestPeerBuildahDerived builds `FROM` strata's image with Debian's buildah
// (--isolation chroot, vfs storage in the test's own directories) and pulls the derived
// image back: the base is the pushed commit, rebuilt from buildah's re-exported layers,
// and the Containerfile's files sit on top of it, /etc moved to /usr/etc.
func TestPeerBuildahDerived(t *testing.T) {
	testutil.RequireRoot(t)
	buildah := testutil.RequireTool(t, "buildah", "buildah")
	ctx := context.Background()
	src := newRepo(t, repo.ModeArchive)
	base := commitTree(t, src, osTree(t, "1.0"), "1.0")
	dir := t.TempDir()
	baseArchive := filepath.Join(dir, "base.tar")
	if _, err := Push(ctx, src, "os", "oci-archive:"+baseArchive, PushOptions{}); err != nil {
		t.Fatal(err)
	}
	ctxDir := filepath.Join(dir, "context")
	files := map[string]string{
		"Containerfile": "FROM oci-archive:" + baseArchive + "\n" +
			"COPY added.txt /usr/share/added.txt\n" +
			"COPY extra.conf /etc/app/extra.conf\n",
		"added.txt":  "added by a derived build\n",
		"extra.conf": "extra=1\n",
	}
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, c := range files {
		if err := os.WriteFile(filepath.Join(ctxDir, n), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	store := []string{"--storage-driver", "vfs", "--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run")}
	t.Cleanup(func() { // vfs layers of a root build are owned by root; buildah removes them
		run(t, buildah, append(store, "rmi", "--all", "--force")...)
	})
	run(t, buildah, append(store, "bud", "--isolation", "chroot", "-f", filepath.Join(ctxDir, "Containerfile"),
		"-t", "localhost/derived:1", ctxDir)...)
	derived := filepath.Join(dir, "derived.tar")
	run(t, buildah, append(store, "push", "localhost/derived:1", "oci-archive:"+derived)...)

	for _, prime := range []bool{false, true} {
		dst := newRepo(t, repo.ModeBareUser)
		if prime { // the base is there already: only the derived layers are fetched
			if _, err := Pull(ctx, dst, "oci-archive:"+baseArchive, PullOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := Pull(ctx, dst, "oci-archive:"+derived, PullOptions{Ref: "derived"})
		if err != nil {
			t.Fatalf("Pull of buildah's image: %v", err)
		}
		if res.Base != base {
			t.Errorf("Pull = base %s, want the pushed commit %s", res.Base, base)
		}
		if prime && res.LayersSkipped == 0 {
			t.Errorf("Pull with the base present skipped no layer: %+v", res)
		}
		c, err := dst.ReadCommit(res.Commit)
		if err != nil {
			t.Fatal(err)
		}
		if c.Parent != base || res.Commit == base {
			t.Errorf("derived commit %s has parent %s, want a new commit on %s", res.Commit, c.Parent, base)
		}
		for _, p := range []string{"/usr/share/added.txt", "/usr/etc/app/extra.conf", "/usr/etc/app/app.conf", "/usr/bin/tool"} {
			if _, err := repo.Lookup(dst, res.Commit, p); err != nil {
				t.Errorf("derived commit: %s: %v", p, err)
			}
		}
		fsckClean(t, dst)
	}
}
