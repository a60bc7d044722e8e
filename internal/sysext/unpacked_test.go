//go:build root || peer

package sysext

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/osrelease"
)

// checkUnpacked checks a tree unpacked from an image of helloTree.
func checkUnpacked(t *testing.T, dest string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dest, "usr/bin/hello"))
	if err != nil || !strings.Contains(string(b), "hello from an extension") {
		t.Errorf("usr/bin/hello = %q, %v", b, err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "usr/bin/hello")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("usr/bin/hello mode = %v, %v; want 0755", fi.Mode(), err)
	}
	if fi, err := os.Stat(filepath.Join(dest, "usr/share/hello/README")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Errorf("README mode = %v, %v; want 0640", fi.Mode(), err)
	}
	if l, err := os.Readlink(filepath.Join(dest, "usr/bin/hi")); err != nil || l != "hello" {
		t.Errorf("usr/bin/hi -> %q, %v; want hello", l, err)
	}
	rel, err := os.ReadFile(filepath.Join(dest, ReleasePath("hello")))
	if v, perr := osrelease.Parse(rel); err != nil || perr != nil || v["ID"] != "debian" || v["VERSION_ID"] != "12" {
		t.Errorf("extension-release = %q, %v", rel, err)
	}
	if _, err := os.Stat(filepath.Join(dest, "opt/hello/data")); err != nil {
		t.Errorf("opt/hello/data: %v", err)
	}
}
