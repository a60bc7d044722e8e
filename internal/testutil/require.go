package testutil

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// RequireRoot fails the test unless it runs with effective uid 0. Tests that call it carry the
// `root` build tag, so plain `go test ./...` never reaches it.
func RequireRoot(t testing.TB) {
	t.Helper()
	if euid := os.Geteuid(); euid != 0 {
		t.Fatalf("this test needs root (euid 0, running as euid %d): run the root tier as root, e.g. sudo make test", euid)
	}
}

// RequireTool returns the path of the program name found on PATH. If it is missing the test fails
// (never skips) and says which Debian package provides it.
func RequireTool(t testing.TB, name, debianPackage string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install the Debian package %s (scripts/deps)", name, debianPackage)
		return ""
	}
	return path
}

// Ostree returns the path of Debian's ostree binary, the peer of the differential tests.
func Ostree(t testing.TB) string {
	t.Helper()
	return RequireTool(t, "ostree", "ostree")
}

const python3 = "/usr/bin/python3"

// python3GI runs the import check once per test binary: each run starts an interpreter.
var python3GI = sync.OnceValue(func() error {
	out, err := exec.Command(python3, "-c", "from gi.repository import GLib").CombinedOutput()
	if err != nil {
		return errors.New(strings.TrimSpace(string(out)) + ": " + err.Error())
	}
	return nil
})

// Python3GI returns the path of a python3 that can import GLib through PyGObject, used to build and
// read GVariants with the reference implementation.
func Python3GI(t testing.TB) string {
	t.Helper()
	if err := python3GI(); err != nil {
		t.Fatalf("%s cannot import gi.repository.GLib (%v): install the Debian packages python3-gi and gir1.2-glib-2.0 (scripts/deps)", python3, err)
	}
	return python3
}

// RepoRoot returns the directory holding go.mod, found by walking up from the working directory
// (the package directory under go test).
func RepoRoot(t testing.TB) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatalf("getting the working directory: %v", err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		if parent := filepath.Dir(dir); parent == dir {
			t.Fatalf("no go.mod in %s or any parent directory", wd)
			return ""
		}
	}
}
