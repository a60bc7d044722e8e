//go:build root

package image_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
)

// requireImageTools needs root and the tools image.Build runs, plus extra
// ({tool, Debian package}) ones the test itself runs.
func requireImageTools(t *testing.T, extra ...[2]string) {
	t.Helper()
	testutil.RequireRoot(t)
	for _, tl := range append([][2]string{{"sfdisk", "fdisk"}, {"mkfs.ext4", "e2fsprogs"}, {"mkfs.vfat", "dosfstools"}, {"mcopy", "mtools"}}, extra...) {
		testutil.RequireTool(t, tl[0], tl[1])
	}
}

// fakeCommit commits a small OS with compose's metadata to a new archive
// repository and returns the repository's path and the commit.
func fakeCommit(t *testing.T) (string, ostree.Checksum) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "repo")
	r, err := repo.Init(path, repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	var md ostree.Metadata
	md.Set("strata.compose.name", gvariant.NewVariant("s", "fakeos"))
	md.Set("strata.kargs", gvariant.NewVariant("as", []string{"console=ttyS0", "loglevel=3"}))
	c := commitFakeOS(t, path, "fakeos/x86_64/test", sysroottest.FakeOS{Version: "1", Etc: map[string]string{"fstab": "# static file system information\n"},
		Files: map[string]string{"usr/lib/hello": "hello\n", "usr/lib/systemd/systemd-journald": "journald\n"}}, md)
	return path, c
}

// commitFakeOS commits f to branch of the repository at path, with the
// version f.Version and then the metadata md.
func commitFakeOS(t *testing.T, path, branch string, f sysroottest.FakeOS, md ostree.Metadata) ostree.Checksum {
	t.Helper()
	r, err := repo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	tree := filepath.Join(t.TempDir(), "tree")
	f.WriteTree(t, tree)
	meta := ostree.Metadata{{Key: ostree.MetaVersion, Value: gvariant.NewVariant("s", f.Version)}}
	meta = append(meta, md...)
	c, _, err := repo.CommitTree(context.Background(), r, repo.DirSource(tree), repo.CommitOptions{
		Branch: branch, Subject: "fake", Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC), Metadata: meta})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
