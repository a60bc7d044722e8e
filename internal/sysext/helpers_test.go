package sysext

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// tree writes files (path → content; a content starting with "->" makes a
// symlink) under a new directory and returns it.
func tree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := cutPrefix(c, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(c), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func cutPrefix(s, p string) (string, bool) {
	if len(s) >= len(p) && s[:len(p)] == p {
		return s[len(p):], true
	}
	return s, false
}

// helloTree is a small extension: a script and a symlink to it.
func helloTree(t testing.TB) string {
	t.Helper()
	dir := tree(t, map[string]string{
		"usr/bin/hello":          "#!/bin/sh\necho hello from an extension\n",
		"usr/share/hello/README": "docs\n",
		"usr/bin/hi":             "->hello",
		"opt/hello/data":         "data\n",
	})
	if err := os.Chmod(filepath.Join(dir, "usr/share/hello/README"), 0o640); err != nil {
		t.Fatal(err)
	}
	return dir
}

// buildImage builds dir as NAME.raw in a new directory with Debian 12's
// identity and returns the image path.
func buildImage(t testing.TB, dir, name string, format Format) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".raw")
	_, err := Build(t.Context(), dir, BuildOptions{Name: name, Out: out, Format: format,
		OSID: "debian", VersionID: "12", Time: time.Unix(0, 0)})
	if err != nil {
		t.Fatalf("Build(%s, %s): %v", dir, format, err)
	}
	return out
}
