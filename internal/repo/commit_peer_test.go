//go:build peer

package repo

import (
	"bytes"
	"crypto/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/testutil"
)

// cmAwkwardTree has what a directory commit must get right: hardlinks,
// dangling and absolute symlinks, empty and 0700 directories, a sticky
// directory, a file larger than smallFileMax, empty files and xattrs.
func cmAwkwardTree(t *testing.T) string {
	big := make([]byte, 2*smallFileMax+123)
	rand.Read(big)
	es := []cmEntry{
		{path: "", kind: 'd', mode: 0o755},
		{path: "empty", kind: 'f', mode: 0o644},
		{path: "big.bin", kind: 'f', mode: 0o600, data: string(big)},
		{path: "dangling", kind: 'l', data: "does/not/exist"},
		{path: "abs", kind: 'l', data: "/usr/bin/env"},
		{path: "private", kind: 'd', mode: 0o700},
		{path: "private/secret", kind: 'f', mode: 0o640, data: "s\n", xattrs: [][2]string{{"user.z", "1"}, {"user.a", "2"}}},
		{path: "tmp", kind: 'd', mode: 0o1777},
		{path: "nested", kind: 'd', mode: 0o755},
		{path: "nested/deeper", kind: 'd', mode: 0o755},
		{path: "nested/deeper/void", kind: 'd', mode: 0o755},
		{path: "nested/deeper/ünïcode ✓", kind: 'f', mode: 0o644, data: "u\n"},
		{path: "exec", kind: 'f', mode: 0o2755, data: "#!/bin/sh\n"},
	}
	dir := cmWriteDir(t, es, false)
	if err := os.Link(filepath.Join(dir, "big.bin"), filepath.Join(dir, "nested", "big-link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

func cmOstree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(testutil.Ostree(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCommitMatchesOstree(t *testing.T) {
	testutil.Ostree(t)
	t.Parallel()
	tree := cmAwkwardTree(t)
	for _, mode := range []Mode{ModeArchive, ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			orepo := filepath.Join(t.TempDir(), "ostree")
			cmOstree(t, "--repo="+orepo, "init", "--mode="+string(mode))
			r := cmNewRepo(t, mode)
			opts := CommitOptions{Branch: "peer/test", Subject: "subject", Body: "body", Timestamp: time.Unix(1700000000, 0),
				Metadata: ostree.Metadata{{Key: "version", Value: gvariant.NewVariant("s", "42")}, {Key: "a.b", Value: gvariant.NewVariant("s", "c=d")}}}
			for i, parent := range []string{"", ""} {
				want := cmOstree(t, "--repo="+orepo, "commit", "-b", "peer/test", "--tree=dir="+tree, "-s", "subject", "-m", "body",
					"--timestamp=@1700000000", "--add-metadata-string=version=42", "--add-metadata-string=a.b=c=d")
				opts.Parent = parent
				got, st := cmCommit(t, r, DirSource(tree), opts)
				if got.String() != want {
					t.Fatalf("commit %d: CommitTree(%s) = %s, want %s as from ostree commit", i, mode, got, want)
				}
				if i == 1 && st.ContentWritten != 0 {
					t.Errorf("second CommitTree(%s) wrote %d content objects, want 0", mode, st.ContentWritten)
				}
			}
			cmOstree(t, "--repo="+r.Path(), "fsck")
			// ostree reads every file strata wrote: compare a checkout.
			if mode != ModeArchive {
				return
			}
			co := filepath.Join(t.TempDir(), "co")
			cmOstree(t, "--repo="+r.Path(), "checkout", "-U", "peer/test", co)
			for _, p := range []string{"big.bin", "nested/big-link", "private/secret"} {
				a, _ := os.ReadFile(filepath.Join(tree, p))
				b, err := os.ReadFile(filepath.Join(co, p))
				if err != nil || !bytes.Equal(a, b) {
					t.Errorf("ostree checkout of strata's %s differs from the source (%v)", p, err)
				}
			}
		})
	}
}

// TestCommitTarMatchesOstree: a tar stream made by GNU tar from a tree
// without xattrs commits to the same checksum in strata and ostree, and to
// the same as the directory.
func TestCommitTarMatchesOstree(t *testing.T) {
	testutil.Ostree(t)
	tarBin := testutil.RequireTool(t, "tar", "tar")
	t.Parallel()
	tree := cmAwkwardTree(t)
	// libostree keeps tar xattrs unsorted (see TarSource): drop them here.
	os.Remove(filepath.Join(tree, "private", "secret"))
	os.WriteFile(filepath.Join(tree, "private", "secret"), []byte("s\n"), 0o640)
	tarFile := filepath.Join(t.TempDir(), "tree.tar")
	if out, err := exec.Command(tarBin, "-C", tree, "--numeric-owner", "-cf", tarFile, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v\n%s", err, out)
	}
	orepo := filepath.Join(t.TempDir(), "ostree")
	cmOstree(t, "--repo="+orepo, "init", "--mode=archive")
	fromTar := cmOstree(t, "--repo="+orepo, "commit", "--orphan", "--tree=tar="+tarFile, "--timestamp=@1", "-s", "s")
	fromDir := cmOstree(t, "--repo="+orepo, "commit", "--orphan", "--tree=dir="+tree, "--timestamp=@1", "-s", "s")
	r := cmNewRepo(t, ModeArchive)
	f, err := os.Open(tarFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _ := cmCommit(t, r, TarSource(f), CommitOptions{Subject: "s", Timestamp: time.Unix(1, 0)})
	if got.String() != fromTar || fromTar != fromDir {
		t.Errorf("CommitTree(tar) = %s, want %s (ostree tar) = %s (ostree dir)", got, fromTar, fromDir)
		t.Logf("strata's commit:\n%s", cmOstree(t, "--repo="+r.Path(), "show", "--raw", got.String()))
		t.Logf("ostree's commit:\n%s", cmOstree(t, "--repo="+orepo, "show", "--raw", fromTar))
	}
}
