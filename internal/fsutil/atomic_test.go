package fsutil

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestWriteFileAtomic replaces a file; its errors name the file and not
// the temporary one it is staged under, and keep the errno's class.
func TestWriteFileAtomic(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	p := filepath.Join(dir, "config")
	for _, data := range []string{"one\n", "two\n"} {
		if err := WriteFileAtomic(p, []byte(data), 0o644); err != nil {
			t.Fatalf("WriteFileAtomic(%s) error = %v", p, err)
		}
		if got, err := os.ReadFile(p); err != nil || string(got) != data {
			t.Fatalf("after WriteFileAtomic(%s, %q): read %q, %v", p, data, got, err)
		}
	}
	missing := filepath.Join(dir, "nodir", "config")
	err := WriteFileAtomic(missing, []byte("x"), 0o644)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), ".tmp") {
		t.Errorf("WriteFileAtomic(%s) error = %v, want ErrNotExist naming the file and no temporary name", missing, err)
	}
	if err := WriteFileAtomic(filepath.Join(p, "sub"), []byte("x"), 0o644); err == nil || strings.Contains(err.Error(), ".tmp") {
		t.Errorf("WriteFileAtomic(under a file) error = %v, want an error without a temporary name", err)
	}
}
