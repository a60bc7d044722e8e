package fsutil

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

func TestRemoveTree(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	outside := filepath.Join(base, "outside")
	if err := os.WriteFile(outside, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(base, "tree")
	for i := 0; i < 40; i++ {
		d := filepath.Join(root, fmt.Sprintf("d%d", i), "sub", "deeper")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		for j := 0; j < 30; j++ {
			if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", j)), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		// Symlinks are removed, not followed.
		if err := os.Symlink(base, filepath.Join(root, fmt.Sprintf("d%d", i), "link")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(outside, filepath.Join(d, "file-link")); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := RemoveTree(root); err != nil {
		t.Fatalf("RemoveTree(%s) = %v", root, err)
	}
	if _, err := os.Lstat(root); !os.IsNotExist(err) {
		t.Errorf("after RemoveTree, Lstat(%s) error = %v, want not exist", root, err)
	}
	if b, err := os.ReadFile(outside); err != nil || string(b) != "keep" {
		t.Errorf("file behind a symlink = %q, %v; want it untouched", b, err)
	}
	if err := RemoveTree(root); err != nil {
		t.Errorf("RemoveTree(missing) = %v, want nil", err)
	}
	if err := RemoveTree(outside); err != nil {
		t.Errorf("RemoveTree(file) = %v", err)
	}
	if _, err := os.Lstat(outside); !os.IsNotExist(err) {
		t.Errorf("RemoveTree(file) left it: %v", err)
	}
}
