package sysroot

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

func TestInitLayout(t *testing.T) {
	t.Parallel()
	s := filepath.Join(t.TempDir(), "sysroot")
	for i := range 2 { // idempotent
		if err := Init(s, "fakeos"); err != nil {
			t.Fatalf("Init(%d): %v", i, err)
		}
	}
	want := []struct {
		path string
		mode fs.FileMode
		link string
	}{
		{"boot", fs.ModeDir | 0o755, ""}, {"dev", fs.ModeDir | 0o755, ""}, {"home", fs.ModeDir | 0o755, ""},
		{"proc", fs.ModeDir | 0o755, ""}, {"run", fs.ModeDir | 0o755, ""}, {"sys", fs.ModeDir | 0o755, ""},
		{"root", fs.ModeDir | 0o700, ""}, {"tmp", fs.ModeDir | fs.ModeSticky | 0o777, ""},
		{"ostree/deploy", fs.ModeDir | 0o755, ""}, {"ostree/repo/objects", fs.ModeDir | 0o755, ""},
		{"ostree/deploy/fakeos/var", fs.ModeDir | 0o755, ""},
		{"ostree/deploy/fakeos/var/tmp", fs.ModeDir | fs.ModeSticky | 0o777, ""},
		{"ostree/deploy/fakeos/var/lib", fs.ModeDir | 0o755, ""},
		{"ostree/deploy/fakeos/var/log", fs.ModeDir | 0o755, ""},
		{"ostree/deploy/fakeos/var/run", fs.ModeSymlink, "../run"},
		{"ostree/deploy/fakeos/var/lock", fs.ModeSymlink, "../run/lock"},
	}
	for _, w := range want {
		fi, err := os.Lstat(filepath.Join(s, w.path))
		if err != nil {
			t.Errorf("Lstat(%s): %v", w.path, err)
			continue
		}
		if w.link != "" {
			if got, _ := os.Readlink(filepath.Join(s, w.path)); got != w.link {
				t.Errorf("Readlink(%s) = %q, want %q", w.path, got, w.link)
			}
			continue
		}
		if fi.Mode() != w.mode {
			t.Errorf("mode of %s = %v, want %v", w.path, fi.Mode(), w.mode)
		}
	}
	cfg, err := os.ReadFile(filepath.Join(s, "ostree/repo/config"))
	if err != nil || string(cfg) != "[core]\nrepo_version=1\nmode=bare\n" {
		t.Errorf("repo config = %q, %v, want mode=bare", cfg, err)
	}
	if err := InitOS(s, "other"); err != nil {
		t.Fatalf("InitOS(other): %v", err)
	}
	sr, err := Open(s)
	if err != nil {
		t.Fatalf("Open(fresh sysroot): %v", err)
	}
	defer sr.Close()
	if n := len(sr.Deployments()); n != 0 {
		t.Errorf("fresh sysroot has %d deployments, want 0", n)
	}
}

func TestInitRefuses(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Init(dir, "fakeos"); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("Init(non-empty foreign dir) = %v, want ErrFailedPrecondition", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "ostree")); err == nil {
		t.Errorf("Init(non-empty foreign dir) created ostree/")
	}
	for _, name := range []string{"", ".", "..", "a/b", "a b"} {
		if err := Init(filepath.Join(t.TempDir(), "s"), name); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("Init(osname %q) = %v, want ErrInvalid", name, err)
		}
	}
	if err := InitOS(t.TempDir(), "fakeos"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("InitOS(not a sysroot) = %v, want ErrNotFound", err)
	}
	if _, err := Open(t.TempDir()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Open(not a sysroot) = %v, want ErrNotFound", err)
	}
}
