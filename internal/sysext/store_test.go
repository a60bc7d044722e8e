package sysext

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	erofs "github.com/erofs/go-erofs"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
)

var debian12 = osrelease.Values{"ID": "debian", "VERSION_ID": "12"}

// rawEROFS writes an EROFS image holding exactly files (path → content;
// "dir/" makes a directory, a content "chr" a character device) without
// any of Build's checks: the bad images of the tests.
func rawEROFS(t testing.TB, name string, files map[string]string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".raw")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := erofs.Create(f)
	for _, k := range sortedKeys(files) {
		v := files[k]
		switch {
		case strings.HasSuffix(k, "/"):
			err = w.Mkdir("/"+strings.TrimSuffix(k, "/"), 0o755)
		case v == "chr":
			err = w.Mknod("/"+k, 0o020000|0o644, 0)
		default:
			var fw *erofs.File
			if fw, err = w.Create("/" + k); err == nil {
				fw.Write([]byte(v))
				err = fw.Close()
			}
		}
		if err != nil {
			t.Fatalf("writing %s: %v", k, err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

const goodRelease = "ID=debian\nVERSION_ID=12\n"

// badImages are images Inspect and Add must refuse, with the class of the
// error.
func badImages(t *testing.T) map[string]struct {
	path  string
	class error
} {
	rel := "usr/lib/extension-release.d/extension-release.x"
	good := buildImage(t, helloTree(t), "x", FormatEROFS)
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := filepath.Join(t.TempDir(), "x.raw")
	bad := bytes.Clone(data)
	copy(bad[1024+8:], bytes.Repeat([]byte{0xff}, 64)) // the superblock past its magic
	if err := os.WriteFile(corrupt, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(t.TempDir(), "x.raw")
	if err := os.WriteFile(truncated, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(t.TempDir(), "x.raw")
	if err := os.WriteFile(garbage, bytes.Repeat([]byte("not an image "), 400), 0o644); err != nil {
		t.Fatal(err)
	}
	sq, err := os.ReadFile("testdata/squashfs/hello.raw")
	if err != nil {
		t.Fatal(err)
	}
	sqBad := filepath.Join(t.TempDir(), "x.raw")
	copy(sq[96:], bytes.Repeat([]byte{0xa5}, len(sq)-96))
	if err := os.WriteFile(sqBad, sq, 0o644); err != nil {
		t.Fatal(err)
	}
	type c = struct {
		path  string
		class error
	}
	return map[string]c{
		"os-release":          {rawEROFS(t, "x", map[string]string{"usr/": "", "usr/lib/": "", "usr/lib/os-release": "ID=evil\n", "usr/lib/extension-release.d/": "", rel: goodRelease}), ErrImage},
		"outside usr and opt": {rawEROFS(t, "x", map[string]string{"etc/": "", "etc/shadow": "x", "usr/": "", "usr/lib/": "", "usr/lib/extension-release.d/": "", rel: goodRelease}), ErrImage},
		"file at the root":    {rawEROFS(t, "x", map[string]string{"evil": "x", "usr/": "", "usr/lib/": "", "usr/lib/extension-release.d/": "", rel: goodRelease}), ErrImage},
		"device node":         {rawEROFS(t, "x", map[string]string{"usr/": "", "usr/null": "chr", "usr/lib/": "", "usr/lib/extension-release.d/": "", rel: goodRelease}), ErrImage},
		"no release":          {rawEROFS(t, "x", map[string]string{"usr/": "", "usr/bin/": "", "usr/bin/x": "x"}), ErrImage},
		"release of another":  {rawEROFS(t, "x", map[string]string{"usr/": "", "usr/lib/": "", "usr/lib/extension-release.d/": "", "usr/lib/extension-release.d/extension-release.y": goodRelease}), ErrImage},
		"release without ID":  {rawEROFS(t, "x", map[string]string{"usr/": "", "usr/lib/": "", "usr/lib/extension-release.d/": "", rel: "VERSION_ID=12\n"}), ErrImage},
		"release bad version": {rawEROFS(t, "x", map[string]string{"usr/": "", "usr/lib/": "", "usr/lib/extension-release.d/": "", rel: "ID=debian\nVERSION_ID=../../x\n"}), errdefs.ErrInvalid},
		"corrupt superblock":  {corrupt, errdefs.ErrCorrupt},
		"truncated":           {truncated, errdefs.ErrCorrupt},
		"not a filesystem":    {garbage, ErrImage},
		"corrupt squashfs":    {sqBad, errdefs.ErrCorrupt},
	}
}

func TestInspectRefuses(t *testing.T) {
	t.Parallel()
	for name, tc := range badImages(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			img, err := Inspect(tc.path)
			if err == nil {
				t.Fatalf("Inspect(%s) = %+v, want an error", name, img)
			}
			if !errors.Is(err, errdefs.ErrInvalid) && !errors.Is(err, errdefs.ErrCorrupt) {
				t.Errorf("Inspect(%s) = %v, want ErrInvalid or ErrCorrupt", name, err)
			}
			if !errors.Is(err, tc.class) {
				t.Logf("Inspect(%s) = %v (class differs from %v)", name, err, tc.class)
			}
		})
	}
}

// TestAddRefuses adds every bad image and a mismatched one, and expects an
// error and an empty extensions directory each time.
func TestAddRefuses(t *testing.T) {
	t.Parallel()
	cases := badImages(t)
	cases["for another version"] = struct {
		path  string
		class error
	}{buildImageFor(t, "x", "13"), ErrMismatch}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := Store{Var: t.TempDir()}
			f, err := os.Open(tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = s.Add(t.Context(), f, "x", AddOptions{Host: debian12, Arch: Architecture()})
			if err == nil {
				t.Fatalf("Add(%s) succeeded", name)
			}
			if name == "for another version" && !errors.Is(err, ErrMismatch) {
				t.Errorf("Add(%s) = %v, want ErrMismatch", name, err)
			}
			des, _ := os.ReadDir(filepath.Join(s.Var, AddedDir))
			if len(des) != 0 {
				t.Errorf("Add(%s) failed (%v) but left %v in %s", name, err, des, AddedDir)
			}
		})
	}
}

func buildImageFor(t *testing.T, name, version string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".raw")
	if _, err := Build(t.Context(), helloTree(t), BuildOptions{Name: name, Out: out, OSID: "debian", VersionID: version}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestAddListRemove(t *testing.T) {
	t.Parallel()
	s := Store{Var: t.TempDir()}
	img := buildImage(t, helloTree(t), "hello", FormatEROFS)
	data, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(t.Context(), bytes.NewReader(data), "hello", AddOptions{Host: debian12, Arch: Architecture(), SHA256: strings.Repeat("0", 64)}); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("Add with a wrong sha256 = %v, want ErrCorrupt", err)
	}
	if _, err := s.Add(t.Context(), bytes.NewReader(data), "hello", AddOptions{Host: debian12, Arch: Architecture()}); err != nil {
		t.Fatalf("Add: %v", err)
	}
	placed := filepath.Join(s.Var, "lib/extensions/hello.raw")
	got, err := os.ReadFile(placed)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("%s after Add: %d bytes, %v; want the image's %d", placed, len(got), err, len(data))
	}
	if fi, _ := os.Stat(placed); fi.Mode().Perm() != 0o644 {
		t.Errorf("%s mode %v, want 0644", placed, fi.Mode())
	}
	l, err := s.List(debian12, Architecture())
	if err != nil || len(l) != 1 || !l[0].Matches || l[0].Source != SourceAdded {
		t.Errorf("List = %+v, %v; want hello, added, matching", l, err)
	}
	l, _ = s.List(osrelease.Values{"ID": "debian", "VERSION_ID": "13"}, Architecture())
	if len(l) != 1 || l[0].Matches || !strings.Contains(l[0].Reason, "VERSION_ID 12, host is 13") {
		t.Errorf("List on 13 = %+v; want a mismatch naming the versions", l)
	}
	if err := s.Remove("hello"); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	if _, err := os.Stat(placed); !os.IsNotExist(err) {
		t.Errorf("%s after Remove: %v", placed, err)
	}
	if err := s.Remove("hello"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Remove again = %v, want ErrNotFound", err)
	}
}

func FuzzInspect(f *testing.F) {
	for _, p := range []string{buildImage(f, helloTree(f), "x", FormatEROFS), "testdata/squashfs/hello.raw"} {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(t.TempDir(), "x.raw")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		img, err := Inspect(p)
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) && !errors.Is(err, errdefs.ErrCorrupt) {
				t.Fatalf("Inspect = %v, want ErrInvalid or ErrCorrupt", err)
			}
			return
		}
		if img.Release["ID"] == "" {
			t.Fatalf("Inspect accepted an image without ID: %+v", img)
		}
	})
}
