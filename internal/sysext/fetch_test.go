package sysext

import (
	"crypto/rand"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
	"github.com/strata-os/strata/internal/sign"
)

// verifier adapts sign's verifiers the way pull does.
type verifier []sign.Verifier

func (v verifier) Verify(data, detached []byte) (string, error) {
	r, err := sign.Verify(data, detached, v...)
	return r.Key, err
}

func newKey(t *testing.T) (sign.Signer, verifier) {
	t.Helper()
	sk, pk, err := sign.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return sign.NewEd25519Signer(sk), verifier{sign.NewEd25519Verifier([]sign.PublicKey{pk}, nil)}
}

// publishedRepo publishes hello for VERSION_IDs 12 and 13 (each built for
// its version) and serves the directory.
func publishedRepo(t *testing.T, signer sign.Signer) (string, string) {
	t.Helper()
	repo := t.TempDir()
	for _, v := range []string{"12", "13"} {
		if _, err := Publish(repo, buildImageFor(t, "hello", v), v, signer); err != nil {
			t.Fatalf("Publish %s: %v", v, err)
		}
	}
	srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
	t.Cleanup(srv.Close)
	return repo, srv.URL
}

func TestFetchFollowLink(t *testing.T) {
	t.Parallel()
	signer, v := newKey(t)
	_, url := publishedRepo(t, signer)
	s := Store{Var: t.TempDir()}
	if err := s.Follow("hello"); err != nil {
		t.Fatal(err)
	}
	deb13 := osrelease.Values{"ID": "debian", "VERSION_ID": "13"}
	for _, host := range []osrelease.Values{debian12, deb13} {
		res, err := s.Fetch(t.Context(), "hello", FetchOptions{BaseURL: url, Verifier: v, Target: host, Arch: Architecture()})
		if err != nil || !res.Fetched {
			t.Fatalf("Fetch(%s) = %+v, %v; want fetched", host["VERSION_ID"], res, err)
		}
		if res.Path != s.FollowedPath("hello", host["VERSION_ID"]) {
			t.Errorf("Fetch(%s).Path = %s", host["VERSION_ID"], res.Path)
		}
	}
	again, err := s.Fetch(t.Context(), "hello", FetchOptions{BaseURL: url, Verifier: v, Target: debian12, Arch: Architecture()})
	if err != nil || again.Fetched {
		t.Errorf("second Fetch = %+v, %v; want kept, not fetched", again, err)
	}
	deb14 := osrelease.Values{"ID": "debian", "VERSION_ID": "14"}
	if _, err := s.Fetch(t.Context(), "hello", FetchOptions{BaseURL: url, Verifier: v, Target: deb14, Arch: Architecture()}); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Fetch(14) = %v, want ErrNotFound (none published)", err)
	}

	// Each OS sees its own image; 14 sees none and says why.
	run := t.TempDir()
	for _, host := range []osrelease.Values{debian12, deb13} {
		st, err := s.Link(host, Architecture(), run)
		if err != nil || len(st) != 1 || !st[0].Matches {
			t.Fatalf("Link(%s) = %+v, %v", host["VERSION_ID"], st, err)
		}
		target, err := os.Readlink(filepath.Join(run, "hello.raw"))
		if want := s.FollowedPath("hello", host["VERSION_ID"]); err != nil || target != want {
			t.Errorf("after Link(%s): hello.raw -> %s, %v; want %s", host["VERSION_ID"], target, err, want)
		}
	}
	st, err := s.Link(deb14, Architecture(), run)
	if err != nil || len(st) != 1 || st[0].Matches || !strings.Contains(st[0].Reason, "no image for VERSION_ID 14") {
		t.Errorf("Link(14) = %+v, %v; want no match and the reason", st, err)
	}
	if _, err := os.Lstat(filepath.Join(run, "hello.raw")); !os.IsNotExist(err) {
		t.Errorf("after Link(14) the link to another version's image is still there: %v", err)
	}

	// Pruning keeps the versions of the deployments left.
	if err := s.Prune(map[string]bool{"13": true}); err != nil {
		t.Fatal(err)
	}
	if vs, _ := s.Versions("hello"); len(vs) != 1 || vs[0] != "13" {
		t.Errorf("Versions after Prune = %v, want [13]", vs)
	}
}

// TestFetchRefuses serves bad publications and expects an error and
// nothing placed.
func TestFetchRefuses(t *testing.T) {
	t.Parallel()
	signer, v := newKey(t)
	other, _ := newKey(t)
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, repo string)
		class error
	}{
		{"signed by an untrusted key", func(t *testing.T, repo string) {
			if _, err := Publish(repo, buildImageFor(t, "hello", "12"), "12", other); err != nil {
				t.Fatal(err)
			}
		}, sign.ErrUntrusted},
		{"image swapped after signing", func(t *testing.T, repo string) {
			if _, err := Publish(repo, buildImageFor(t, "hello", "12"), "12", signer); err != nil {
				t.Fatal(err)
			}
			swap, err := os.ReadFile(buildImage(t, tree(t, map[string]string{"usr/bin/hello": "evil"}), "hello", FormatEROFS))
			if err != nil {
				t.Fatal(err)
			}
			os.WriteFile(filepath.Join(repo, "extensions/hello/12/hello.raw"), swap, 0o644)
		}, sign.ErrUntrusted},
		{"another version's image replayed", func(t *testing.T, repo string) {
			if _, err := Publish(repo, buildImageFor(t, "hello", "11"), "11", signer); err != nil {
				t.Fatal(err)
			}
			os.MkdirAll(filepath.Join(repo, "extensions/hello/12"), 0o755)
			for _, f := range []string{"hello.raw", "hello.raw.sig"} {
				b, _ := os.ReadFile(filepath.Join(repo, "extensions/hello/11", f))
				os.WriteFile(filepath.Join(repo, "extensions/hello/12", f), b, 0o644)
			}
		}, sign.ErrUntrusted},
		{"signed but built for another version", func(t *testing.T, repo string) {
			if _, err := Publish(repo, buildImageFor(t, "hello", "11"), "12", signer); err != nil {
				t.Fatal(err)
			}
		}, ErrMismatch},
		{"signature missing", func(t *testing.T, repo string) {
			if _, err := Publish(repo, buildImageFor(t, "hello", "12"), "12", signer); err != nil {
				t.Fatal(err)
			}
			os.Remove(filepath.Join(repo, "extensions/hello/12/hello.raw.sig"))
		}, errdefs.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			repo := t.TempDir()
			tc.setup(t, repo)
			srv := httptest.NewServer(http.FileServer(http.Dir(repo)))
			defer srv.Close()
			s := Store{Var: t.TempDir()}
			_, err := s.Fetch(t.Context(), "hello", FetchOptions{BaseURL: srv.URL, Verifier: v, Target: debian12, Arch: Architecture()})
			if !errors.Is(err, tc.class) {
				t.Fatalf("Fetch = %v, want %v", err, tc.class)
			}
			if vs, _ := s.Versions("hello"); len(vs) != 0 {
				t.Errorf("Fetch failed (%v) but left versions %v", err, vs)
			}
		})
	}
}
