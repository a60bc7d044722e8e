package repo

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

func TestRemotes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Init(dir, ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.AddRemote(Remote{Name: "origin", URL: "http://127.0.0.1:8080/repo/"}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddRemote(Remote{Name: "signed", URL: "https://example.com/r", SignVerify: true, Ed25519File: "/etc/k.pub"}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddRemote(Remote{Name: "origin", URL: "http://x/"}); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("AddRemote(duplicate) = %v, want ErrAlreadyExists", err)
	}
	if err := r.AddRemote(Remote{Name: "bad", URL: "ftp://x/"}); !errors.Is(err, errdefs.ErrInvalid) {
		t.Errorf("AddRemote(ftp) = %v, want ErrInvalid", err)
	}
	cfg, _ := os.ReadFile(filepath.Join(dir, "config"))
	if want := "[remote \"origin\"]\nurl=http://127.0.0.1:8080/repo/\ngpg-verify=false\n"; !strings.Contains(string(cfg), want) {
		t.Errorf("config = %q, want it to contain %q", cfg, want)
	}
	r2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	rs, err := r2.ListRemotes()
	if err != nil || len(rs) != 2 || rs[1].Name != "signed" || !rs[1].SignVerify || rs[1].Ed25519File != "/etc/k.pub" || rs[0].GPGVerify {
		t.Errorf("ListRemotes() = %+v, %v", rs, err)
	}
	if err := r2.DeleteRemote("origin"); err != nil {
		t.Fatal(err)
	}
	if _, err := r2.GetRemote("origin"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("GetRemote(deleted) = %v, want ErrNotFound", err)
	}
}

// TrackURL reuses the remote of a URL, else adds one named after the
// host and port, numbered when the name is taken.
func TestTrackURL(t *testing.T) {
	t.Parallel()
	r, err := Init(t.TempDir(), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.AddRemote(Remote{Name: "origin", URL: "http://srv:8080/os/"}); err != nil {
		t.Fatal(err)
	}
	if err := r.AddRemote(Remote{Name: "other-8080", URL: "http://elsewhere/"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		url, want string
		added     bool
	}{
		{"http://srv:8080/os", "origin", false},
		{"http://new.example:9000/", "new.example-9000", true},
		{"http://new.example:9000", "new.example-9000", false},
		{"http://other:8080/", "other-8080-2", true},
		{"file:///srv/repo", "url", true},
	} {
		name, added, err := r.TrackURL(tc.url, Remote{SignVerify: true, Ed25519File: "/k.pub"})
		if err != nil || name != tc.want || added != tc.added {
			t.Errorf("TrackURL(%q) = %q, %v, %v; want %q, %v", tc.url, name, added, err, tc.want, tc.added)
			continue
		}
		rm, err := r.GetRemote(name)
		if err != nil || (tc.added && (rm.URL != tc.url || rm.GPGVerify || !rm.SignVerify || rm.Ed25519File != "/k.pub")) {
			t.Errorf("remote %s after TrackURL(%q) = %+v, %v; want the URL, sign-verify with /k.pub, no GPG", name, tc.url, rm, err)
		}
	}
}
