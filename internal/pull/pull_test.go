package pull

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// addOwnedEntries adds what only archive, bare and bare-user repositories
// can hold: xattrs, a setuid file and files of other owners.
func addOwnedEntries(tree map[string]entry) {
	tree["etc/labelled"] = entry{Data: "x\n", Xattrs: []ostree.Xattr{{Name: "user.b", Value: []byte("2")}, {Name: "user.a", Value: []byte("1")}}}
	tree["usr/bin/suid"] = entry{Data: "\x00\x01binary\xff", Mode: 0o4755, UID: 1000, GID: 1000}
	tree["home/user/.profile"] = entry{Data: "PATH=/bin\n", Mode: 0o600, UID: 1000, GID: 100}
}

// source is a published archive repository with one signed commit.
type source struct {
	repo   *repo.Repo
	srv    *server
	commit ostree.Checksum
	key    sign.SecretKey
}

func newSource(t *testing.T, tree map[string]entry) *source {
	t.Helper()
	r := newRepo(t, repo.ModeArchive)
	s := &source{repo: r, key: testKey(t, 7)}
	s.commit = buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: tree})
	signCommit(t, r, s.commit, s.key)
	summarize(t, r, s.key)
	s.srv = newServer(t, r)
	return s
}

func TestPullIntoEachMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		mode    repo.Mode
		remote  string
		xattrs  bool
		wantRef string
	}{
		{name: "archive by URL", mode: repo.ModeArchive, xattrs: true},
		{name: "bare-user by URL", mode: repo.ModeBareUser, xattrs: true},
		{name: "bare-user-only by URL", mode: repo.ModeBareUserOnly},
		{name: "bare-user by remote", mode: repo.ModeBareUser, remote: "origin"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tree := testTree("1")
			if tt.xattrs {
				addOwnedEntries(tree)
			}
			src := newSource(t, tree)
			dst := newRepo(t, tt.mode)
			opts := Options{URL: src.srv.URL, Remote: tt.remote, Refs: []string{"os/stable"}, Verifier: verifierFor(src.key), Retry: fastRetry}
			res, err := Pull(t.Context(), dst, opts)
			if err != nil {
				t.Fatalf("Pull() error = %v", err)
			}
			got, err := dst.ReadRef(tt.remote, "os/stable")
			if err != nil || got != src.commit {
				t.Errorf("ReadRef(%q, os/stable) = %s, %v, want %s", tt.remote, got, err, src.commit)
			}
			if tt.remote != "" {
				if _, err := dst.ReadRef("", "os/stable"); !errors.Is(err, errdefs.ErrNotFound) {
					t.Errorf("ReadRef(refs/heads/os/stable) error = %v, want ErrNotFound after a pull by remote", err)
				}
			}
			want := reachable(t, src.repo, src.commit)
			have := reachable(t, dst, src.commit)
			if diff := cmp.Diff(want, have); diff != "" {
				t.Errorf("objects of the pulled commit differ from the source (-source +pulled):\n%s", diff)
			}
			if res.Fetched != int64(len(want)-1) || res.Skipped != 0 || res.Commits != 1 {
				t.Errorf("Pull() fetched %d, skipped %d, commits %d; want %d, 0, 1", res.Fetched, res.Skipped, res.Commits, len(want)-1)
			}
			if len(res.Refs) != 1 || !strings.Contains(res.Refs[0].SignedBy, src.key.Public().String()) {
				t.Errorf("Pull() refs = %+v, want os/stable signed by %s", res.Refs, src.key.Public())
			}
			if _, err := os.Stat(partialPath(dst, src.commit)); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("commitpartial marker after a complete pull: stat error = %v, want not exist", err)
			}
			if meta, err := dst.ReadCommitMeta(src.commit); err != nil || meta == nil {
				t.Errorf("ReadCommitMeta(pulled) = %d bytes, %v; want the detached signatures", len(meta), err)
			}

			// A second pull finds the commit complete and fetches no object.
			src.srv.requests()
			res, err = Pull(t.Context(), dst, opts)
			if err != nil {
				t.Fatalf("Pull(again) error = %v", err)
			}
			if objs := objectRequests(src.srv.requests(), ".commit", ".dirtree", ".dirmeta", ".filez"); len(objs) != 0 || res.Fetched != 0 {
				t.Errorf("Pull(again) fetched %d objects, requested %q; want none", res.Fetched, objs)
			}
		})
	}
}

// staged reports whether the object of request path p (objects/XX/REST.EXT) is in one of r's
// staging directories under tmp/, in any of its forms.
func staged(t *testing.T, r *repo.Repo, p string) bool {
	t.Helper()
	dir, file := path.Split(strings.TrimPrefix(p, "objects/"))
	rest, _, _ := strings.Cut(file, ".")
	matches, err := filepath.Glob(filepath.Join(r.Path(), "tmp", "*", path.Clean(dir), rest+".*"))
	if err != nil {
		t.Fatal(err)
	}
	return len(matches) > 0
}

func TestPullResumesAfterInterruption(t *testing.T) {
	t.Parallel()
	tree := testTree("1")
	for i := range 40 {
		tree[fmt.Sprintf("usr/share/many/f%02d", i)] = entry{Data: fmt.Sprintf("file %d\n", i)}
	}
	src := newSource(t, tree)
	dst := newRepo(t, repo.ModeBareUser)
	var served atomic.Int64
	failed := map[string]bool{}
	src.srv.setFault(func(p string) (int, bool) {
		if strings.HasSuffix(p, ".filez") && served.Add(1) > 10 {
			failed[p] = true // the handler runs under the server's lock
			return http.StatusServiceUnavailable, true
		}
		return 0, false
	})
	opts := Options{URL: src.srv.URL, Refs: []string{"os/stable"}, Verifier: verifierFor(src.key), Retry: fastRetry, Parallel: 2}
	if _, err := Pull(t.Context(), dst, opts); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Pull(server failing after 10 objects) error = %v, want ErrUnavailable", err)
	}
	if _, err := dst.ReadRef("", "os/stable"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReadRef after a failed pull: error = %v, want ErrNotFound (the ref moves last)", err)
	}
	if _, err := os.Stat(partialPath(dst, src.commit)); err != nil {
		t.Errorf("commitpartial marker after a failed pull: %v, want present", err)
	}
	// The objects the interrupted pull stored: served, and in its staging directory. An object
	// whose response was on its way when the pull gave up is served but not stored (its
	// download was cancelled with the pull); fetching it again is right.
	first := map[string]bool{}
	var okServed int
	for _, p := range objectRequests(src.srv.requests(), ".commit", ".dirtree", ".dirmeta", ".filez") {
		if failed[p] {
			continue
		}
		okServed++
		if staged(t, dst, p) {
			first[p] = true
		}
	}
	if len(first) < okServed-2 || len(first) < 10 {
		t.Fatalf("the interrupted pull stored %d of the %d objects served (want all but the at most 2 in flight, and at least 10)", len(first), okServed)
	}

	src.srv.setFault(nil)
	res, err := Pull(t.Context(), dst, opts)
	if err != nil {
		t.Fatalf("Pull(resumed) error = %v", err)
	}
	var again []string
	for _, p := range objectRequests(src.srv.requests(), ".commit", ".dirtree", ".dirmeta", ".filez") {
		if first[p] {
			again = append(again, p)
		}
	}
	if len(again) > 0 {
		t.Errorf("Pull(resumed) fetched again %q, want none of the %d objects fetched before", again, len(first))
	}
	if res.Skipped == 0 {
		t.Errorf("Pull(resumed) skipped 0 objects, want the ones staged by the interrupted pull")
	}
	if got, err := dst.ReadRef("", "os/stable"); err != nil || got != src.commit {
		t.Errorf("ReadRef after the resumed pull = %s, %v; want %s", got, err, src.commit)
	}
	if diff := cmp.Diff(reachable(t, src.repo, src.commit), reachable(t, dst, src.commit)); diff != "" {
		t.Errorf("resumed pull differs from the source (-source +pulled):\n%s", diff)
	}
	if _, err := os.Stat(partialPath(dst, src.commit)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("commitpartial marker after the resumed pull: stat error = %v, want not exist", err)
	}
}

func TestPullVerifiesSignatures(t *testing.T) {
	t.Parallel()
	good, other := testKey(t, 1), testKey(t, 2)
	tests := []struct {
		name        string
		signWith    []sign.SecretKey // commit signatures
		summaryKeys []sign.SecretKey // summary.sig signatures
		verifier    Verifier
		noVerify    bool
		requireSum  bool
		wantErr     error // nil: success
	}{
		{name: "signed by the trusted key", signWith: []sign.SecretKey{good}, verifier: verifierFor(good)},
		{name: "one of two signatures trusted", signWith: []sign.SecretKey{other, good}, verifier: verifierFor(good)},
		{name: "signed summary and commit", signWith: []sign.SecretKey{good}, summaryKeys: []sign.SecretKey{good}, verifier: verifierFor(good), requireSum: true},
		{name: "unsigned commit", verifier: verifierFor(good), wantErr: sign.ErrNoSignature},
		{name: "signed by another key", signWith: []sign.SecretKey{other}, verifier: verifierFor(good), wantErr: sign.ErrUntrusted},
		{name: "summary signed by another key", signWith: []sign.SecretKey{good}, summaryKeys: []sign.SecretKey{other}, verifier: verifierFor(good), wantErr: sign.ErrUntrusted},
		{name: "signed summary required but unsigned", signWith: []sign.SecretKey{good}, verifier: verifierFor(good), requireSum: true, wantErr: errdefs.ErrFailedPrecondition},
		{name: "no key and no opt-out", signWith: []sign.SecretKey{good}, wantErr: errdefs.ErrFailedPrecondition},
		{name: "verification turned off", noVerify: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t, repo.ModeArchive)
			c := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: testTree("1")})
			for _, k := range tt.signWith {
				signCommit(t, r, c, k)
			}
			summarize(t, r, tt.summaryKeys...)
			srv := newServer(t, r)
			dst := newRepo(t, repo.ModeBareUser)
			_, err := Pull(t.Context(), dst, Options{
				URL: srv.URL, Refs: []string{"os/stable"}, Verifier: tt.verifier, NoVerify: tt.noVerify,
				RequireSummarySignature: tt.requireSum, Retry: fastRetry,
			})
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Pull() error = %v, want success", err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Pull() error = %v, want %v", err, tt.wantErr)
			}
			if objs := objectRequests(srv.requests(), ".dirtree", ".dirmeta", ".filez"); len(objs) > 0 {
				t.Errorf("Pull() fetched %q before refusing, want no content fetched", objs)
			}
			if _, err := dst.ReadRef("", "os/stable"); !errors.Is(err, errdefs.ErrNotFound) {
				t.Errorf("ReadRef after a refused pull: error = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestPullChecksRefBinding(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		bindings []string
		ref      string // what to pull; "@" is replaced by "@COMMIT"
		wantErr  error
	}{
		{name: "bound to the ref", bindings: []string{"os/stable"}, ref: "os/stable"},
		{name: "bound to several refs", bindings: []string{"os/beta", "os/stable"}, ref: "os/stable"},
		{name: "no binding", bindings: []string{}, ref: "os/stable"},
		{name: "bound to another ref", bindings: []string{"os/testing"}, ref: "os/stable", wantErr: errdefs.ErrFailedPrecondition},
		{name: "bound to another ref, explicit commit", bindings: []string{"os/testing"}, ref: "os/stable@", wantErr: errdefs.ErrFailedPrecondition},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newRepo(t, repo.ModeArchive)
			c := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: testTree("1"), Bindings: tt.bindings})
			summarize(t, r)
			srv := newServer(t, r)
			dst := newRepo(t, repo.ModeArchive)
			ref := strings.Replace(tt.ref, "@", "@"+c.String(), 1)
			_, err := Pull(t.Context(), dst, pullOpts(srv.URL, ref))
			if tt.wantErr == nil {
				if err != nil {
					t.Fatalf("Pull(%s) error = %v, want success", ref, err)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), "ostree.ref-binding") {
				t.Fatalf("Pull(%s) error = %v, want a ref-binding error (%v)", ref, err, tt.wantErr)
			}
			if objs := objectRequests(srv.requests(), ".dirtree", ".dirmeta", ".filez"); len(objs) > 0 {
				t.Errorf("Pull(%s) fetched %q before refusing, want no content fetched", ref, objs)
			}
		})
	}
}

func TestPullWithoutSummary(t *testing.T) {
	t.Parallel()
	r := newRepo(t, repo.ModeArchive)
	c := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: testTree("1")})
	srv := newServer(t, r)
	dst := newRepo(t, repo.ModeArchive)
	if _, err := Pull(t.Context(), dst, pullOpts(srv.URL, "os/stable")); err != nil {
		t.Fatalf("Pull(no summary) error = %v", err)
	}
	reqs := srv.requests()
	for _, want := range []string{"summary", "refs/heads/os/stable", "config"} {
		if !slices.Contains(reqs, want) {
			t.Errorf("Pull(no summary) requested %q, want %s among them", reqs, want)
		}
	}
	if got, err := dst.ReadRef("", "os/stable"); err != nil || got != c {
		t.Errorf("ReadRef(os/stable) = %s, %v; want %s", got, err, c)
	}
	if _, err := Pull(t.Context(), dst, pullOpts(srv.URL, "os/missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Pull(missing ref) error = %v, want ErrNotFound", err)
	}
}

func TestPullDepth(t *testing.T) {
	t.Parallel()
	r := newRepo(t, repo.ModeArchive)
	var chain []ostree.Checksum
	var parent ostree.Checksum
	for i := range 3 {
		parent = buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: testTree(fmt.Sprint(i)), Parent: parent, Timestamp: uint64(1700000000 + i)})
		chain = append(chain, parent)
	}
	summarize(t, r)
	srv := newServer(t, r)
	tests := []struct {
		name  string
		depth int
		want  []bool // which of chain[0..2] are complete locally
	}{
		{name: "tip only", depth: 0, want: []bool{false, false, true}},
		{name: "one parent", depth: 1, want: []bool{false, true, true}},
		{name: "all history", depth: -1, want: []bool{true, true, true}},
		{name: "deeper than the history", depth: 10, want: []bool{true, true, true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dst := newRepo(t, repo.ModeArchive)
			opts := pullOpts(srv.URL, "os/stable")
			opts.Depth = tt.depth
			res, err := Pull(t.Context(), dst, opts)
			if err != nil {
				t.Fatalf("Pull(depth %d) error = %v", tt.depth, err)
			}
			var got []bool
			for _, c := range chain {
				ok, _ := dst.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
				if ok {
					reachable(t, dst, c) // fails the test if the tree is incomplete
				}
				got = append(got, ok)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Pull(depth %d) stored commits %v, want %v", tt.depth, got, tt.want)
			}
			if wantCommits := strings.Count(fmt.Sprint(tt.want), "true"); res.Commits != wantCommits {
				t.Errorf("Pull(depth %d).Commits = %d, want %d", tt.depth, res.Commits, wantCommits)
			}
		})
	}
}

func TestPullRefusesDowngrade(t *testing.T) {
	t.Parallel()
	r := newRepo(t, repo.ModeArchive)
	old := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: testTree("1"), Timestamp: 1700000000})
	newer := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: testTree("2"), Parent: old, Timestamp: 1700000100})
	summarize(t, r)
	srv := newServer(t, r)
	dst := newRepo(t, repo.ModeArchive)
	if _, err := Pull(t.Context(), dst, pullOpts(srv.URL, "os/stable")); err != nil {
		t.Fatal(err)
	}
	// The remote goes back in time.
	if err := r.SetRef("", "os/stable", old); err != nil {
		t.Fatal(err)
	}
	summarize(t, r)
	tests := []struct {
		name    string
		ref     string
		allow   bool
		wantErr bool
	}{
		{name: "refused", ref: "os/stable", wantErr: true},
		{name: "explicit commit", ref: "os/stable@" + old.String()},
		{name: "allowed", ref: "os/stable", allow: true},
	}
	for _, tt := range tests { // sequential: each case starts from the newer commit
		t.Run(tt.name, func(t *testing.T) {
			if err := dst.SetRef("", "os/stable", newer); err != nil {
				t.Fatal(err)
			}
			opts := pullOpts(srv.URL, tt.ref)
			opts.AllowDowngrade = tt.allow
			_, err := Pull(t.Context(), dst, opts)
			got, _ := dst.ReadRef("", "os/stable")
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrFailedPrecondition) || got != newer {
					t.Errorf("Pull(%s) = ref %s, error %v; want ErrFailedPrecondition and the ref unchanged", tt.ref, got, err)
				}
				return
			}
			if err != nil || got != old {
				t.Errorf("Pull(%s) = ref %s, error %v; want %s", tt.ref, got, err, old)
			}
		})
	}
}

func TestPullRefusesNonArchiveRemote(t *testing.T) {
	t.Parallel()
	r := newRepo(t, repo.ModeBareUser)
	buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: map[string]entry{"a": {Data: "a"}}})
	if _, err := NewHandler(r, nil); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("NewHandler(bare-user repository) error = %v, want ErrFailedPrecondition", err)
	}
	// Any static server would publish it anyway; the client refuses.
	ts := httptest.NewServer(http.FileServer(http.Dir(r.Path())))
	defer ts.Close()
	dst := newRepo(t, repo.ModeBareUser)
	_, err := Pull(t.Context(), dst, pullOpts(ts.URL, "os/stable"))
	if !errors.Is(err, errdefs.ErrUnsupported) {
		t.Errorf("Pull(from a bare-user repository) error = %v, want ErrUnsupported", err)
	}
}

// TestPullIntoArchiveKeepsReceivedStream: a pull into an archive repository stores each
// content object as the server sent it (a source compressed at another zlib level than the
// client's), not inflated and compressed again, and the objects read back the same.
func TestPullIntoArchiveKeepsReceivedStream(t *testing.T) {
	t.Parallel()
	dir := t.TempDir() + "/src"
	r, err := repo.Init(dir, repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	cfg, err := os.OpenFile(dir+"/config", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.WriteString("\n[archive]\nzlib-level=9\n"); err != nil {
		t.Fatal(err)
	}
	cfg.Close()
	if r, err = repo.Open(dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	commit := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: testTree("1")})
	srv := newServer(t, r)
	dst := newRepo(t, repo.ModeArchive)
	if _, err := Pull(t.Context(), dst, Options{URL: srv.URL, Refs: []string{"os/stable"}, NoVerify: true, Retry: fastRetry}); err != nil {
		t.Fatalf("Pull() error = %v", err)
	}
	files := 0
	for n := range reachable(t, r, commit) {
		if n.Type != ostree.ObjectFile {
			continue
		}
		want, err := os.ReadFile(r.ObjectPath(n))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(dst.ObjectPath(n))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("object %s: %d bytes stored, %v; want the %d bytes served", n, len(got), err, len(want))
		}
		files++
	}
	if files == 0 {
		t.Fatal("the commit has no content object")
	}
	if rep, err := repo.Fsck(t.Context(), dst, repo.FsckOptions{}); err != nil || !rep.OK() {
		t.Errorf("Fsck(pulled) = %+v, %v; want no problems", rep, err)
	}
}
