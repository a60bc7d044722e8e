package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// osTree writes a small OS tree: packaged files with a dpkg database as compose keeps it,
// /usr/etc, a symlink, two identical files, a kernel, setuid bits and an empty /var.
func osTree(t *testing.T, version string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string]string{
		"usr/bin/tool":                              "tool " + version,
		"usr/bin/tool-copy":                         "tool " + version,
		"usr/share/big/data":                        string(bytes.Repeat([]byte("b"), 4096)),
		"usr/etc/app/app.conf":                      "key=1\n",
		"usr/lib/modules/6.1.0-1/vmlinuz":           "kernel",
		"usr/lib/modules/6.1.0-1/initramfs.img":     "initramfs",
		"usr/lib/os-release":                        "ID=strata\nVERSION=" + version + "\n",
		"usr/lib/sysimage/dpkg/info/tool.list":      "/.\n/usr\n/usr/bin\n/usr/bin/tool\n/bin/tool-copy\n",
		"usr/lib/sysimage/dpkg/info/big:amd64.list": "/usr/share/big/data\n",
		"usr/lib/sysimage/dpkg/info/app.list":       "/etc/app/app.conf\n",
		"usr/lib/sysimage/dpkg/status":              "Package: tool\n",
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
	for _, d := range []string{"var", "sysroot", "usr/share/empty"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(dir, "usr/bin/tool"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("tool", filepath.Join(dir, "usr/bin/tool-link")); err != nil {
		t.Fatal(err)
	}
	return dir
}

// newRepo makes a repository of the given mode.
func newRepo(t testing.TB, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// commitTree commits dir to branch os with a fixed time and the version.
func commitTree(t testing.TB, r *repo.Repo, dir, version string) ostree.Checksum {
	t.Helper()
	var md ostree.Metadata
	md = append(md, metaEntry(ostree.MetaVersion, version))
	c, _, err := repo.CommitTree(context.Background(), r, repo.DirSource(dir), repo.CommitOptions{
		Branch: "os", Subject: "os " + version, Timestamp: time.Unix(1700000000, 0), Metadata: md})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// fsckClean fails the test unless fsck finds nothing wrong.
func fsckClean(t testing.TB, r *repo.Repo) {
	t.Helper()
	rep, err := repo.Fsck(context.Background(), r, repo.FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() {
		t.Fatalf("fsck: %+v", rep.Problems)
	}
}

// tarLayer builds an uncompressed layer from headers (content for regular files).
func tarLayer(t *testing.T, entries ...tarEntry) v1.Layer {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
	if err != nil {
		t.Fatal(err)
	}
	return l
}

type tarEntry struct {
	h    tar.Header
	body string
}

func dirEntry(name string) tarEntry {
	return tarEntry{h: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}}
}
func fileEntry(name, body string) tarEntry {
	return tarEntry{h: tar.Header{Name: name, Typeflag: tar.TypeReg}, body: body}
}

// derive appends layers to img as a Containerfile build would.
func derive(t *testing.T, img v1.Image, layers ...v1.Layer) v1.Image {
	t.Helper()
	out, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// toLayout writes img into a fresh OCI layout and returns its oci: reference.
func toLayout(t *testing.T, img v1.Image) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	if err := writeLayout(dir, "", img); err != nil {
		t.Fatal(err)
	}
	return "oci:" + dir
}

// encapsulated returns the image of r's commit os.
func encapsulated(t *testing.T, r *repo.Repo) v1.Image {
	t.Helper()
	img, _, err := Encapsulate(context.Background(), r, "os", t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func metaEntry(k, v string) gvariant.DictEntry {
	return gvariant.DictEntry{Key: k, Value: gvariant.NewVariant("s", v)}
}
