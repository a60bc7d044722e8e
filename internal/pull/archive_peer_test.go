//go:build peer

package pull_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
	"github.com/strata-os/strata/internal/repo"
)

// TestPullOstreeArchiveKeepsItsObjects pulls a commit that ostree wrote (zlib level 6, its
// own header encoding) into a strata archive repository: every content object is stored
// byte for byte as ostree wrote it, and ostree's own fsck of the result is clean.
func TestPullOstreeArchiveKeepsItsObjects(t *testing.T) {
	run, src := ostreeSource(t)
	tree := t.TempDir()
	files := map[string]string{
		"usr/bin/tool":     "#!/bin/sh\necho tool\n",
		"usr/share/words":  strings.Repeat("immutable systems pull verified objects\n", 4000),
		"usr/lib/empty":    "",
		"etc/motd":         "hello\n",
		"usr/lib/os-info":  "NAME=test\n",
		"usr/share/binary": string(bytes.Repeat([]byte{0, 1, 2, 3, 250, 251}, 30000)),
	}
	for p, data := range files {
		if err := os.MkdirAll(filepath.Join(tree, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../usr/lib/os-info", filepath.Join(tree, "etc/os-info")); err != nil {
		t.Fatal(err)
	}
	commit := run("commit", "--repo="+src, "--branch=os", "--no-bindings", "--tree=dir="+tree)
	srv := pulltest.NewServer(t, src)
	dst := filepath.Join(t.TempDir(), "client")
	r, err := repo.Init(dst, repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	opts := pull.Options{URL: srv.URL, Refs: []string{"os"}, NoVerify: true,
		Retry: pull.RetryPolicy{Attempts: 1}, RequestTimeout: time.Minute}
	if _, err := pull.Pull(context.Background(), r, opts); err != nil {
		t.Fatalf("Pull() = %v", err)
	}
	objects, err := filepath.Glob(filepath.Join(src, "objects", "*", "*.filez"))
	if err != nil || len(objects) < len(files) {
		t.Fatalf("ostree's content objects: %d, %v; want at least %d", len(objects), err, len(files))
	}
	for _, p := range objects {
		want, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(src, p)
		got, err := os.ReadFile(filepath.Join(dst, rel))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes stored, %v; want ostree's %d bytes", rel, len(got), err, len(want))
		}
	}
	if got, err := r.ReadRef("", "os"); err != nil || got.String() != commit {
		t.Errorf("ReadRef(os) = %s, %v; want %s", got, err, commit)
	}
	run("fsck", "--repo="+dst)
}
