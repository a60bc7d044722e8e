//go:build root

package fsutil

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/testutil"
)

func TestSetImmutable(t *testing.T) {
	testutil.RequireRoot(t)
	dir := t.TempDir()
	d := filepath.Join(dir, "d")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for range 2 { // idempotent
		if err := SetImmutable(d, true); err != nil {
			t.Fatalf("SetImmutable(on) = %v", err)
		}
	}
	t.Cleanup(func() { SetImmutable(d, false) })
	if on, err := Immutable(d); err != nil || !on {
		t.Errorf("Immutable after SetImmutable(on) = %v, %v, want true", on, err)
	}
	if err := os.WriteFile(filepath.Join(d, "f"), nil, 0o644); !errors.Is(err, os.ErrPermission) {
		t.Errorf("creating a file in the immutable directory = %v, want EPERM", err)
	}
	if err := SetImmutable(d, false); err != nil {
		t.Fatalf("SetImmutable(off) = %v", err)
	}
	if on, err := Immutable(d); err != nil || on {
		t.Errorf("Immutable after SetImmutable(off) = %v, %v, want false", on, err)
	}

	// A symlink is not followed, and a file is not a directory.
	link := filepath.Join(dir, "link")
	if err := os.Symlink("d", link); err != nil {
		t.Fatal(err)
	}
	// O_DIRECTORY|O_NOFOLLOW on a symlink fails with ENOTDIR (or ELOOP).
	if err := SetImmutable(link, true); !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.ELOOP) {
		t.Errorf("SetImmutable(symlink) = %v, want ENOTDIR or ELOOP", err)
	}
	if on, err := Immutable(d); err != nil || on {
		t.Errorf("Immutable(target of the symlink) = %v, %v, want false", on, err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := SetImmutable(file, true); !errors.Is(err, unix.ENOTDIR) {
		t.Errorf("SetImmutable(file) = %v, want ENOTDIR", err)
	}
}
