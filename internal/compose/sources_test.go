package compose

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func TestHostSources(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/debian.sources"),
		"Types: deb\n# comment\nURIs: http://deb.debian.org/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"+
			"Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n"+
			"Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\nComponents: main\n\n"+
			"Types: deb-src\nURIs: http://deb.debian.org/debian\nSuites: bookworm\nComponents: main\n")
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/other.list"), "deb https://packages.example.com/apt stable main\n")
	writeFile(t, filepath.Join(root, "etc/apt/sources.list.d/nodesource.sources.disabled"), "Types: deb\nURIs: http://x/debian\nSuites: a\n")
	writeFile(t, filepath.Join(root, "etc/apt/sources.list"), "deb [arch=amd64 signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib # c\n")
	got, err := HostSources(root)
	if err != nil {
		t.Fatal(err)
	}
	kr := "/usr/share/keyrings/debian-archive-keyring.gpg"
	want := []Source{
		{URI: "http://mirror.example/debian/", Suite: "bookworm", Components: []string{"main", "contrib"}, SignedBy: "/k.gpg"},
		{URI: "http://deb.debian.org/debian", Suite: "bookworm", Components: []string{"main"}, SignedBy: kr},
		{URI: "http://deb.debian.org/debian", Suite: "bookworm-updates", Components: []string{"main"}, SignedBy: kr},
		{URI: "http://deb.debian.org/debian-security", Suite: "bookworm-security", Components: []string{"main"}},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("HostSources() mismatch (-want +got):\n%s", d)
	}
	if l := want[0].Line(); l != "deb [signed-by=/k.gpg] http://mirror.example/debian/ bookworm main contrib" {
		t.Errorf("Source.Line() = %q", l)
	}
	if _, err := HostSources(t.TempDir()); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("HostSources(no sources) = %v, want ErrNotFound", err)
	}
}

func TestResolveSources(t *testing.T) {
	t.Parallel()
	host := []Source{
		{URI: "http://deb.debian.org/debian", Suite: "bookworm", Components: []string{"main"}},
		{URI: "http://deb.debian.org/debian", Suite: "bookworm-updates", Components: []string{"main"}},
		{URI: "http://deb.debian.org/debian-security", Suite: "bookworm-security", Components: []string{"main"}},
	}
	hostFn := func() ([]Source, error) { return host, nil }
	noHost := func() ([]Source, error) { return nil, errors.New("host sources read") }
	tests := []struct {
		name      string
		m         Manifest
		host      func() ([]Source, error)
		want      []Source
		wantSuite string
	}{
		{"host default", Manifest{}, hostFn, host, "bookworm"},
		{"host with other suite", Manifest{Suite: "trixie"}, hostFn, []Source{
			{URI: "http://deb.debian.org/debian", Suite: "trixie", Components: []string{"main"}},
			{URI: "http://deb.debian.org/debian", Suite: "trixie-updates", Components: []string{"main"}},
			{URI: "http://deb.debian.org/debian-security", Suite: "trixie-security", Components: []string{"main"}},
		}, "trixie"},
		{"mirror and suite", Manifest{Mirror: "http://127.0.0.1:9/debian", Suite: "sid"}, noHost,
			[]Source{{URI: "http://127.0.0.1:9/debian", Suite: "sid", Components: []string{"main"}}}, "sid"},
		{"mirror, host suite", Manifest{Mirror: "http://m/debian", Components: []string{"main", "non-free"}}, hostFn,
			[]Source{{URI: "http://m/debian", Suite: "bookworm", Components: []string{"main", "non-free"}}}, "bookworm"},
		{"sources", Manifest{Sources: []string{"deb http://m/debian trixie main", "deb http://m/debian trixie-updates main"}}, noHost,
			[]Source{{URI: "http://m/debian", Suite: "trixie", Components: []string{"main"}}, {URI: "http://m/debian", Suite: "trixie-updates", Components: []string{"main"}}}, "trixie"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, suite, err := ResolveSources(&tc.m, tc.host)
			if err != nil {
				t.Fatalf("ResolveSources() = %v", err)
			}
			if d := cmp.Diff(tc.want, got); d != "" || suite != tc.wantSuite {
				t.Errorf("ResolveSources() suite %q (want %q), sources mismatch (-want +got):\n%s", suite, tc.wantSuite, d)
			}
		})
	}
}

func TestReleaseDate(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/debian/dists/bookworm/InRelease":
			w.Write([]byte("-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nDate: Sat, 10 May 2025 09:39:43 UTC\n"))
		case "/debian/dists/bookworm-updates/InRelease":
			w.Write([]byte("Origin: Debian\nDate: Tue, 20 May 2025 08:00:00 UTC\n"))
		case "/debian/dists/nodate/InRelease":
			w.Write([]byte("Origin: Debian\n"))
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	src := func(suite string) Source { return Source{URI: srv.URL + "/debian/", Suite: suite} }
	got, err := ReleaseDate(context.Background(), srv.Client(), []Source{src("bookworm"), src("bookworm-updates"), src("bookworm")})
	if want := time.Date(2025, 5, 20, 8, 0, 0, 0, time.UTC); err != nil || !got.Equal(want) {
		t.Errorf("ReleaseDate() = %v, %v, want %v", got, err, want)
	}
	if _, err := ReleaseDate(context.Background(), srv.Client(), []Source{src("nodate")}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("ReleaseDate(no Date) = %v, want ErrInvalid", err)
	}
	if _, err := ReleaseDate(context.Background(), srv.Client(), []Source{src("trixie")}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReleaseDate(missing suite) = %v, want ErrNotFound", err)
	}
	if _, err := ReleaseDate(context.Background(), srv.Client(), []Source{{URI: "http://127.0.0.1:9/debian", Suite: "x"}}); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("ReleaseDate(unreachable) = %v, want ErrUnavailable", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "dists/s/InRelease"), "Date: Thu, 01 Jan 2026 00:00:00 UTC\n")
	if got, err := ReleaseDate(context.Background(), nil, []Source{{URI: "file://" + dir, Suite: "s"}}); err != nil || got.Year() != 2026 {
		t.Errorf("ReleaseDate(file://) = %v, %v, want 2026", got, err)
	}
}
