package cli

import (
	"bytes"
	"encoding/json"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
)

// run runs the strata command line and returns its exit code and output.
func publishRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return code, out.String(), errb.String()
}

// mustRun runs the command line and fails the test unless it exits 0.
func publishMustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errs := publishRun(t, args...)
	if code != exitOK {
		t.Fatalf("strata %s = exit %d (%s), want 0", strings.Join(args, " "), code, errs)
	}
	return out
}

// publishCommit commits one small file on os/stable in the archive
// repository at path and returns the commit.
func publishCommit(t *testing.T, path string) ostree.Checksum {
	t.Helper()
	r, err := repo.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.SetFsync(false)
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	file, err := txn.WriteContent(ostree.FileInfo{Mode: ostree.ModeReg | 0o644}, strings.NewReader("hello\n"), 6, nil)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := txn.WriteMetadata(ostree.ObjectDirMeta, ostree.DirMeta{Mode: ostree.ModeDir | 0o755}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	tree, err := txn.WriteMetadata(ostree.ObjectDirTree, ostree.DirTree{Files: []ostree.TreeFile{{Name: "motd", Checksum: file}}}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	data, err := (&ostree.Commit{Subject: "one", Timestamp: 1700000000, RootTree: tree, RootMeta: meta}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := txn.WriteMetadata(ostree.ObjectCommit, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.SetRef("", "os/stable", c); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestPublishAndPull goes through keygen, sign, verify, summary, remote
// and pull as a user would, checking exit codes and effects.
func TestPublishAndPull(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "src"), filepath.Join(dir, "dst")
	key, other := filepath.Join(dir, "release"), filepath.Join(dir, "other")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "init", "--repo", dst, "--mode", "bare-user")
	c := publishCommit(t, src)

	pub := strings.TrimSpace(publishMustRun(t, "repo", "keygen", "--out", key))
	publishMustRun(t, "repo", "keygen", "--out", other)
	if b, err := os.ReadFile(key + ".pub"); err != nil || strings.TrimSpace(string(b)) != pub {
		t.Errorf("keygen printed %q, want the content of %s.pub (%q, %v)", pub, key, b, err)
	}
	if code, _, _ := publishRun(t, "repo", "keygen", "--out", key); code != exitFailure {
		t.Errorf("keygen over an existing key = exit %d, want %d", code, exitFailure)
	}

	if out := publishMustRun(t, "repo", "sign", "--repo", src, "os/stable", "--key", key+".key"); !strings.HasPrefix(out, "signed "+c.String()) {
		t.Errorf("sign = %q, want signed %s", out, c)
	}
	if out := publishMustRun(t, "repo", "sign", "--repo", src, "os/stable", "--key", key+".key"); !strings.HasPrefix(out, "already signed") {
		t.Errorf("sign again = %q, want already signed", out)
	}
	if out := publishMustRun(t, "repo", "verify", "--repo", src, "os/stable", "--trusted-key", key+".pub"); !strings.Contains(out, pub) {
		t.Errorf("verify = %q, want the signing key %s named", out, pub)
	}
	verifyCases := []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{name: "another key", args: []string{"--trusted-key", other + ".pub"}, wantCode: exitFailure, wantErr: "untrusted"},
		{name: "no key", wantCode: exitUsage, wantErr: "--trusted-key"},
		{name: "missing key file", args: []string{"--trusted-key", filepath.Join(dir, "none.pub")}, wantCode: exitFailure, wantErr: "none.pub"},
	}
	for _, tt := range verifyCases {
		code, _, errs := publishRun(t, append([]string{"repo", "verify", "--repo", src, "os/stable"}, tt.args...)...)
		if code != tt.wantCode || !strings.Contains(errs, tt.wantErr) {
			t.Errorf("verify with %s = exit %d (%q), want %d mentioning %q", tt.name, code, errs, tt.wantCode, tt.wantErr)
		}
	}

	publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
	if _, err := os.Stat(filepath.Join(src, "summary.sig")); err != nil {
		t.Errorf("summary --sign-key wrote no summary.sig: %v", err)
	}
	if out := publishMustRun(t, "repo", "summary", "--repo", src, "--view"); !strings.Contains(out, "* os/stable\n") || !strings.Contains(out, c.String()) {
		t.Errorf("summary --view = %q, want os/stable at %s", out, c)
	}

	r, err := repo.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	h, err := pull.NewHandler(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(func() {
		srv.Close()
		h.Close()
		r.Close()
	})

	if code, _, errs := publishRun(t, "repo", "pull", "--repo", dst, "--url", srv.URL, "os/stable"); code != exitUsage || !strings.Contains(errs, "--no-verify") {
		t.Errorf("pull without a key = exit %d (%q), want %d suggesting --no-verify", code, errs, exitUsage)
	}
	if code, _, errs := publishRun(t, "repo", "pull", "--repo", dst, "--url", srv.URL, "--trusted-key", other+".pub", "os/stable"); code != exitFailure || !strings.Contains(errs, "untrusted") {
		t.Errorf("pull with another key = exit %d (%q), want %d, untrusted", code, errs, exitFailure)
	}
	out := publishMustRun(t, "repo", "pull", "--repo", dst, "--url", srv.URL, "--trusted-key", key+".pub", "--json", "os/stable")
	var res pullJSON
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("pull --json printed %q: %v", out, err)
	}
	if len(res.Refs) != 1 || res.Refs[0].Commit != c.String() || res.ObjectsFetched != 3 || !strings.Contains(res.Refs[0].SignedBy, pub) {
		t.Errorf("pull --json = %+v, want os/stable at %s, 3 objects fetched, signed by %s", res, c, pub)
	}
	if got := strings.TrimSpace(publishReadFile(t, filepath.Join(dst, "refs", "heads", "os", "stable"))); got != c.String() {
		t.Errorf("refs/heads/os/stable after pull --url = %q, want %s", got, c)
	}
	// The pull by URL recorded a remote for it, and the ref under it.
	if host := strings.TrimPrefix(srv.URL, "http://"); res.Remote != strings.ReplaceAll(host, ":", "-") {
		t.Errorf("pull --url --json remote = %q, want one named after %s", res.Remote, host)
	}
	if got := strings.TrimSpace(publishReadFile(t, filepath.Join(dst, "refs", "remotes", res.Remote, "os", "stable"))); got != c.String() {
		t.Errorf("refs/remotes/%s/os/stable after pull --url = %q, want %s", res.Remote, got, c)
	}

	publishMustRun(t, "repo", "remote", "add", "--repo", dst, "origin", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	if out := publishMustRun(t, "repo", "remote", "list", "--repo", dst, "-u"); !strings.Contains(out, "origin") || !strings.Contains(out, srv.URL) {
		t.Errorf("remote list -u = %q, want origin and %s", out, srv.URL)
	}
	cfg := publishReadFile(t, filepath.Join(dst, "config"))
	absKey, _ := filepath.Abs(key + ".pub")
	for _, want := range []string{`[remote "origin"]`, "url=" + srv.URL, "gpg-verify=false", "sign-verify=true", "verification-ed25519-file=" + absKey} {
		if !strings.Contains(cfg, want) {
			t.Errorf("config after remote add = %q, want a line %q", cfg, want)
		}
	}
	if out := publishMustRun(t, "repo", "pull", "--repo", dst, "origin", "os/stable"); !strings.Contains(out, "origin:os/stable: "+c.String()) {
		t.Errorf("pull origin os/stable = %q, want origin:os/stable at %s", out, c)
	}
	if got := strings.TrimSpace(publishReadFile(t, filepath.Join(dst, "refs", "remotes", "origin", "os", "stable"))); got != c.String() {
		t.Errorf("refs/remotes/origin/os/stable = %q, want %s", got, c)
	}
	publishMustRun(t, "repo", "remote", "delete", "--repo", dst, "origin")
	if code, _, _ := publishRun(t, "repo", "remote", "delete", "--repo", dst, "origin"); code != exitFailure {
		t.Errorf("remote delete of a deleted remote = exit %d, want %d", code, exitFailure)
	}
	var left []remoteJSON
	out = publishMustRun(t, "repo", "remote", "list", "--repo", dst, "--json")
	if err := json.Unmarshal([]byte(out), &left); err != nil || len(left) != 1 || left[0].Name != res.Remote {
		t.Errorf("remote list --json after delete = %q, want only %s, the remote of the pull by URL", out, res.Remote)
	}

	publishMustRun(t, "repo", "summary", "--repo", src)
	if _, err := os.Stat(filepath.Join(src, "summary.sig")); !os.IsNotExist(err) {
		t.Errorf("summary without --sign-key left summary.sig (stat: %v), want it removed", err)
	}
}

func publishReadFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
