package pull

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sign"
)

// entry is one file of a test tree: a regular file (Data, Mode) or a
// symlink (Target).
type entry struct {
	Data     string
	Mode     uint32 // permission bits; 0 means 0644
	UID, GID uint32
	Target   string
	Xattrs   []ostree.Xattr
}

// testTree is the tree most tests commit: every kind of entry every mode
// can store, including a compressible and an incompressible large file
// and an empty directory.
func testTree(version string) map[string]entry {
	rnd := rand.New(rand.NewPCG(1, 2))
	noise := make([]byte, 300<<10)
	for i := range noise {
		noise[i] = byte(rnd.Uint32())
	}
	return map[string]entry{
		"etc/motd":              {Data: "Welcome " + version + "\n"},
		"etc/os-release":        {Target: "../usr/lib/os-release"},
		"usr/lib/os-release":    {Data: "NAME=Test\nVERSION_ID=" + version + "\n"},
		"usr/bin/hello":         {Data: "#!/bin/sh\necho hello\n", Mode: 0o755},
		"usr/share/empty-file":  {Data: ""},
		"usr/share/zeros":       {Data: strings.Repeat("\x00", 1<<20)},
		"usr/share/noise":       {Data: string(noise)},
		"usr/share/doc/a/b/c/d": {Data: "deep\n"},
		"var/empty/":            {},
	}
}

// commitSpec describes a commit to build with buildCommit.
type commitSpec struct {
	Ref       string // refs/heads name to move; "" moves none
	Tree      map[string]entry
	Parent    ostree.Checksum
	Timestamp uint64   // 0 means 1700000000
	Bindings  []string // nil binds to Ref; empty writes none
}

// buildCommit writes spec into r and returns the commit checksum.
func buildCommit(t testing.TB, r *repo.Repo, spec commitSpec) ostree.Checksum {
	t.Helper()
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	meta, err := txn.WriteMetadata(ostree.ObjectDirMeta, ostree.DirMeta{Mode: ostree.ModeDir | 0o755}.Marshal())
	if err != nil {
		t.Fatal(err)
	}
	dirs := map[string]*ostree.DirTree{"": {}}
	var addDir func(p string)
	addDir = func(p string) {
		if _, ok := dirs[p]; ok {
			return
		}
		dirs[p] = &ostree.DirTree{}
		addDir(parentDir(p))
	}
	for p, e := range spec.Tree {
		if d, ok := strings.CutSuffix(p, "/"); ok {
			addDir(d)
			continue
		}
		addDir(parentDir(p))
		fi := ostree.FileInfo{UID: e.UID, GID: e.GID, Mode: ostree.ModeReg | 0o644, Xattrs: ostree.CanonicalXattrs(e.Xattrs)}
		if e.Mode != 0 {
			fi.Mode = ostree.ModeReg | e.Mode
		}
		var payload io.Reader = strings.NewReader(e.Data)
		size := int64(len(e.Data))
		if e.Target != "" {
			fi.Mode, fi.SymlinkTarget, payload, size = ostree.ModeSymlink|0o777, e.Target, nil, 0
		}
		c, err := txn.WriteContent(fi, payload, size, nil)
		if err != nil {
			t.Fatalf("writing %s: %v", p, err)
		}
		d := dirs[parentDir(p)]
		d.Files = append(d.Files, ostree.TreeFile{Name: path.Base(p), Checksum: c})
	}
	order := slices.Collect(func(yield func(string) bool) {
		for p := range dirs {
			if !yield(p) {
				return
			}
		}
	})
	depth := func(p string) int {
		if p == "" {
			return -1
		}
		return strings.Count(p, "/")
	}
	sort.Slice(order, func(i, j int) bool { return depth(order[i]) > depth(order[j]) })
	var root ostree.Checksum
	for _, p := range order {
		d := dirs[p]
		d.Sort()
		c, err := txn.WriteMetadata(ostree.ObjectDirTree, d.Marshal())
		if err != nil {
			t.Fatal(err)
		}
		if p == "" {
			root = c
			continue
		}
		parent := dirs[parentDir(p)]
		parent.Dirs = append(parent.Dirs, ostree.TreeDir{Name: path.Base(p), Tree: c, Meta: meta})
	}
	var md ostree.Metadata
	md.Set(ostree.MetaVersion, gvariant.NewVariant("s", "1"))
	bindings := spec.Bindings
	if bindings == nil && spec.Ref != "" {
		bindings = []string{spec.Ref}
	}
	if len(bindings) > 0 {
		list := make([]any, len(bindings))
		for i, b := range slices.Sorted(slices.Values(bindings)) {
			list[i] = b
		}
		md.Set(ostree.MetaRefBinding, gvariant.NewVariant("as", list))
	}
	ts := spec.Timestamp
	if ts == 0 {
		ts = 1700000000
	}
	cm := &ostree.Commit{Metadata: md, Parent: spec.Parent, Subject: "test", Timestamp: ts, RootTree: root, RootMeta: meta}
	data, err := cm.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	c, err := txn.WriteMetadata(ostree.ObjectCommit, data)
	if err != nil {
		t.Fatal(err)
	}
	if spec.Ref != "" {
		if err := txn.SetRef("", spec.Ref, c); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return c
}

func parentDir(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}

// newRepo creates a repository of the given mode without fsync.
func newRepo(t testing.TB, mode repo.Mode) *repo.Repo {
	t.Helper()
	r, err := repo.Init(t.TempDir()+"/repo", mode)
	if err != nil {
		t.Fatal(err)
	}
	r.SetFsync(false)
	t.Cleanup(func() { r.Close() })
	return r
}

// testKey returns a deterministic ed25519 key.
func testKey(t testing.TB, seed byte) sign.SecretKey {
	t.Helper()
	k, err := sign.NewSecretKey(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func verifierFor(keys ...sign.SecretKey) Verifier {
	var pubs []sign.PublicKey
	for _, k := range keys {
		pubs = append(pubs, k.Public())
	}
	return Signatures(sign.NewEd25519Verifier(pubs, nil))
}

// signCommit adds an ed25519 signature by k to commit c's detached metadata.
func signCommit(t testing.TB, r *repo.Repo, c ostree.Checksum, k sign.SecretKey) {
	t.Helper()
	data, err := r.ReadMetadata(ostree.ObjectCommit, c)
	if err != nil {
		t.Fatal(err)
	}
	old, err := r.ReadCommitMeta(c)
	if err != nil {
		t.Fatal(err)
	}
	meta, err := sign.Append(old, data, sign.NewEd25519Signer(k))
	if err != nil {
		t.Fatal(err)
	}
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.WriteCommitMeta(c, meta); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
}

// summarize writes the summary, signed by keys when there are any.
func summarize(t testing.TB, r *repo.Repo, keys ...sign.SecretKey) {
	t.Helper()
	opts := repo.SummaryOptions{}
	if len(keys) > 0 {
		opts.Sign = func(data []byte) ([]byte, error) {
			var signers []sign.Signer
			for _, k := range keys {
				signers = append(signers, sign.NewEd25519Signer(k))
			}
			return sign.Append(nil, data, signers...)
		}
	}
	if _, err := r.RegenerateSummary(opts); err != nil {
		t.Fatal(err)
	}
}

// server serves a repository with the real Handler behind a fault hook
// and logs the paths requested.
type server struct {
	URL string

	mu    sync.Mutex
	log   []string
	fault func(path string) (status int, ok bool)
}

func newServer(t testing.TB, r *repo.Repo) *server {
	t.Helper()
	h, err := NewHandler(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		p := strings.TrimPrefix(req.URL.Path, "/")
		s.mu.Lock()
		s.log = append(s.log, p)
		fault := s.fault
		s.mu.Unlock()
		if fault != nil {
			if code, ok := fault(p); ok {
				http.Error(w, "injected", code)
				return
			}
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(func() {
		ts.Close()
		h.Close()
	})
	s.URL = ts.URL
	return s
}

// setFault installs fn, which answers a request with an error status
// instead of the file when it returns true.
func (s *server) setFault(fn func(path string) (int, bool)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = fn
}

// requests returns the paths requested so far and clears the log.
func (s *server) requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.log
	s.log = nil
	return out
}

// fastRetry keeps failing tests fast.
var fastRetry = RetryPolicy{Attempts: 2, Base: time.Millisecond, Max: time.Millisecond}

func pullOpts(url string, refs ...string) Options {
	return Options{URL: url, Refs: refs, NoVerify: true, Retry: fastRetry}
}

// reachable lists the objects of commit c's tree (commit included) as
// stored in r, verifying each on the way: metadata hashes to its name and
// content objects rehash to theirs after a full read.
func reachable(t testing.TB, r *repo.Repo, c ostree.Checksum) map[ostree.ObjectName]bool {
	t.Helper()
	out := map[ostree.ObjectName]bool{}
	meta := func(typ ostree.ObjectType, c ostree.Checksum) []byte {
		n := ostree.ObjectName{Checksum: c, Type: typ}
		b, err := r.ReadMetadata(typ, c)
		if err != nil {
			t.Fatalf("reading %s: %v", n, err)
		}
		if got := ostree.MetadataChecksum(b); got != c {
			t.Fatalf("object %s hashes to %s", n, got)
		}
		out[n] = true
		return b
	}
	var walk func(tree ostree.Checksum)
	walk = func(tree ostree.Checksum) {
		dt, err := ostree.ParseDirTree(meta(ostree.ObjectDirTree, tree))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range dt.Files {
			n := ostree.ObjectName{Checksum: f.Checksum, Type: ostree.ObjectFile}
			if out[n] {
				continue
			}
			if err := checkContent(r, f.Checksum); err != nil {
				t.Fatal(err)
			}
			out[n] = true
		}
		for _, d := range dt.Dirs {
			meta(ostree.ObjectDirMeta, d.Meta)
			walk(d.Tree)
		}
	}
	cm, err := ostree.ParseCommit(meta(ostree.ObjectCommit, c))
	if err != nil {
		t.Fatal(err)
	}
	meta(ostree.ObjectDirMeta, cm.RootMeta)
	walk(cm.RootTree)
	return out
}

func checkContent(r *repo.Repo, c ostree.Checksum) error {
	ct, err := r.OpenContent(c)
	if err != nil {
		return err
	}
	defer ct.Close()
	got, err := ostree.ContentChecksum(ct.Info, ct)
	if err != nil {
		return fmt.Errorf("reading content object %s: %w", c, err)
	}
	if got != c {
		return fmt.Errorf("content object %s rehashes to %s: %w", c, got, errdefs.ErrCorrupt)
	}
	return nil
}

// objectRequests returns the object paths among requested paths.
func objectRequests(paths []string, suffixes ...string) []string {
	var out []string
	for _, p := range paths {
		for _, s := range suffixes {
			if strings.HasPrefix(p, "objects/") && strings.HasSuffix(p, s) {
				out = append(out, p)
				break
			}
		}
	}
	return out
}
