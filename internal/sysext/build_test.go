package sysext

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
)

func TestBuildInspect(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{FormatEROFS, FormatSquashFS} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			want := osrelease.Values{"ID": "debian", "VERSION_ID": "12", "ARCHITECTURE": Architecture()}
			img := "testdata/squashfs/hello.raw" // mksquashfs's, of helloTree (strata writes EROFS)
			if f == FormatEROFS {
				img = buildImage(t, helloTree(t), "hello", f)
			} else {
				delete(want, "ARCHITECTURE")
			}
			got, err := Inspect(img)
			if err != nil {
				t.Fatalf("Inspect(%s): %v", img, err)
			}
			if d := cmp.Diff(want, got.Release); d != "" {
				t.Errorf("Inspect(%s).Release (-want +got):\n%s", img, d)
			}
			if got.Format != f || got.Name != "hello" {
				t.Errorf("Inspect(%s) = %s %s, want %s hello", img, got.Format, got.Name, f)
			}
			// usr usr/bin usr/bin/hello usr/bin/hi usr/share usr/share/hello
			// usr/share/hello/README opt opt/hello opt/hello/data usr/lib
			// usr/lib/extension-release.d and its file.
			if got.Entries != 13 {
				t.Errorf("Inspect(%s).Entries = %d, want 13", img, got.Entries)
			}
		})
	}
}

// TestBuildReproducible builds the same content twice, from directories
// made at different times, and expects the same bytes.
func TestBuildReproducible(t *testing.T) {
	t.Parallel()
	for _, f := range []Format{FormatEROFS} {
		t.Run(string(f), func(t *testing.T) {
			t.Parallel()
			a := helloTree(t)
			b := helloTree(t)
			old := time.Unix(1e9, 0)
			if err := os.Chtimes(filepath.Join(b, "usr/bin/hello"), old, old); err != nil {
				t.Fatal(err)
			}
			ia, err := os.ReadFile(buildImage(t, a, "hello", f))
			if err != nil {
				t.Fatal(err)
			}
			ib, err := os.ReadFile(buildImage(t, b, "hello", f))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(ia, ib) {
				t.Errorf("two builds of the same content differ (%d and %d bytes)", len(ia), len(ib))
			}
		})
	}
}

func TestBuildKeepsOwnRelease(t *testing.T) {
	t.Parallel()
	dir := helloTree(t)
	rel := filepath.Join(dir, ReleasePath("hello"))
	if err := os.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(rel, []byte("ID=_any\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "hello.raw")
	img, err := Build(t.Context(), dir, BuildOptions{Name: "hello", Out: out})
	if err != nil {
		t.Fatalf("Build: %v", err)
	}
	if d := cmp.Diff(osrelease.Values{"ID": "_any"}, img.Release); d != "" {
		t.Errorf("Build kept release (-want +got):\n%s", d)
	}
	if _, err := Build(t.Context(), dir, BuildOptions{Name: "hello", Out: out, OSID: "debian", VersionID: "12"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("Build with an identity over the directory's own = %v, want ErrInvalid", err)
	}
}

func TestBuildRefuses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		files map[string]string
		opts  BuildOptions
	}{
		{"outside usr and opt", map[string]string{"usr/bin/x": "x", "etc/x.conf": "x"}, BuildOptions{}},
		{"os-release", map[string]string{"usr/lib/os-release": "ID=evil\n"}, BuildOptions{}},
		{"no os id", map[string]string{"usr/bin/x": "x"}, BuildOptions{OSID: "-"}},
		{"no version", map[string]string{"usr/bin/x": "x"}, BuildOptions{VersionID: "-"}},
		{"both versions", map[string]string{"usr/bin/x": "x"}, BuildOptions{SysextLevel: "1.0"}},
		{"bad version", map[string]string{"usr/bin/x": "x"}, BuildOptions{VersionID: "../12"}},
		{"bad format", map[string]string{"usr/bin/x": "x"}, BuildOptions{Format: "ext4"}},
		{"bad name", map[string]string{"usr/bin/x": "x"}, BuildOptions{Name: "../x"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			opts := tc.opts
			if opts.Name == "" {
				opts.Name = "x"
			}
			opts.Out = filepath.Join(t.TempDir(), opts.Name+".raw")
			switch opts.OSID {
			case "":
				opts.OSID = "debian"
			case "-":
				opts.OSID = ""
			}
			switch opts.VersionID {
			case "":
				opts.VersionID = "12"
			case "-":
				opts.VersionID = ""
			}
			_, err := Build(t.Context(), tree(t, tc.files), opts)
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("Build = %v, want ErrInvalid", err)
			}
			if _, serr := os.Stat(opts.Out); serr == nil {
				t.Errorf("Build failed (%v) but wrote %s", err, opts.Out)
			}
		})
	}
}

// TestBuildRefusesSquashFS: strata writes EROFS only.
func TestBuildRefusesSquashFS(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "x.raw")
	_, err := Build(t.Context(), helloTree(t), BuildOptions{Name: "x", Out: out, Format: FormatSquashFS, OSID: "debian", VersionID: "12"})
	if !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("Build squashfs = %v, want ErrUnsupported", err)
	}
	if _, err := os.Stat(out); err == nil {
		t.Errorf("Build failed but wrote %s", out)
	}
}

// TestBuildBigDirectoryAndDanglingLink: EROFS stores a directory of 300
// entries and a link that does not resolve.
func TestBuildBigDirectoryAndDanglingLink(t *testing.T) {
	t.Parallel()
	files := map[string]string{"usr/bin/gone": "->missing"}
	for i := range 300 {
		files["usr/lib/many/f"+strconv.Itoa(i)] = "x"
	}
	out := filepath.Join(t.TempDir(), "x.raw")
	img, err := Build(t.Context(), tree(t, files), BuildOptions{Name: "x", Out: out, OSID: "debian", VersionID: "12"})
	if err != nil || img.Entries != 307 {
		t.Errorf("Build = %d entries, %v; want 307", img.Entries, err)
	}
}
