package sysroottest

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// FakeKernelVersion is the kernel version of FakeOS trees.
const FakeKernelVersion = "5.10.0-fake"

// FakeOS describes a fake OS tree: just enough for a deployment.
type FakeOS struct {
	Kernel    string            // vmlinuz content ("" = "fake kernel v1\n")
	Initramfs string            // initramfs.img content ("" = "fake initramfs\n"); "-" for none
	NoKernel  bool              // leave usr/lib/modules out
	Pretty    string            // PRETTY_NAME ("" = "Fake OS")
	Version   string            // commit version metadata ("" = none)
	Etc       map[string]string // files under usr/etc (path → content)
	Files     map[string]string // other files (path → content)
	Symlinks  map[string]string // symlinks (path → target), replacing whatever WriteTree put there
	Omit      []string          // paths removed from the tree before Symlinks are made
	Timestamp time.Time         // commit time (zero = 2023-01-01 UTC)
}

// WriteTree writes the tree into dir (which must not exist).
func (f FakeOS) WriteTree(t testing.TB, dir string) {
	t.Helper()
	files := map[string]string{
		"usr/lib/os-release": "NAME=\"Fake OS\"\nID=fakeos\nPRETTY_NAME=\"" + def(f.Pretty, "Fake OS") + "\"\n",
		"usr/bin/true":       "#!/bin/sh\n",
	}
	if !f.NoKernel {
		mod := "usr/lib/modules/" + FakeKernelVersion + "/"
		files[mod+"vmlinuz"] = def(f.Kernel, "fake kernel v1\n")
		if f.Initramfs != "-" {
			files[mod+"initramfs.img"] = def(f.Initramfs, "fake initramfs\n")
		}
	}
	for p, c := range f.Etc {
		files["usr/etc/"+p] = c
	}
	for p, c := range f.Files {
		files[p] = c
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"usr/etc", "var"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range f.Omit {
		if err := os.RemoveAll(filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range f.Symlinks {
		full := filepath.Join(dir, p)
		if err := os.RemoveAll(full); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
}

func def(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// Commit writes the tree and commits it to branch of r, returning the
// commit checksum.
func (f FakeOS) Commit(t testing.TB, r *repo.Repo, branch string) ostree.Checksum {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	f.WriteTree(t, dir)
	ts := f.Timestamp
	if ts.IsZero() {
		ts = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	var md ostree.Metadata
	if f.Version != "" {
		md.Set(ostree.MetaVersion, gvariant.NewVariant("s", f.Version))
	}
	c, _, err := repo.CommitTree(context.Background(), r, repo.DirSource(dir), repo.CommitOptions{
		Branch: branch, Subject: "fake OS " + f.Version, Timestamp: ts, Metadata: md,
	})
	if err != nil {
		t.Fatalf("committing fake OS: %v", err)
	}
	return c
}

// ClearImmutable clears the immutable attribute of every deployment root
// under the sysroot at root, so that t.TempDir can remove it. Register it
// with t.Cleanup before deploying.
func ClearImmutable(root string) {
	oses, _ := os.ReadDir(filepath.Join(root, "ostree/deploy"))
	for _, o := range oses {
		ds, _ := os.ReadDir(filepath.Join(root, "ostree/deploy", o.Name(), "deploy"))
		for _, d := range ds {
			if d.IsDir() {
				SetImmutable(filepath.Join(root, "ostree/deploy", o.Name(), "deploy", d.Name()), false)
			}
		}
	}
}

// SetImmutable sets or clears the immutable attribute of dir
// (fsutil.SetImmutable), ignoring filesystems without attributes.
func SetImmutable(dir string, on bool) error {
	if err := fsutil.SetImmutable(dir, on); err != nil && !errors.Is(err, errdefs.ErrUnsupported) {
		return err
	}
	return nil
}

// IsImmutable reports whether dir carries the immutable attribute.
func IsImmutable(dir string) bool {
	on, err := fsutil.Immutable(dir)
	return err == nil && on
}
