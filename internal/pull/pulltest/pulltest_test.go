package pulltest

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/ostree"
)

func newFileServer(t *testing.T, files map[string]string) *Server {
	t.Helper()
	dir := t.TempDir()
	for p, data := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return NewServer(t, dir)
}

// get fetches url with a client that never retries and has a short overall timeout.
func get(t *testing.T, url string, timeout time.Duration) (int, []byte, error) {
	t.Helper()
	c := &http.Client{Timeout: timeout}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

func TestFaults(t *testing.T) {
	t.Parallel()
	const data = "0123456789abcdef"
	tests := []struct {
		name     string
		fault    Fault
		wantCode int
		wantBody string
		wantErr  bool // reading the response fails
	}{
		{"none", Fault{Name: "serve", Serve: func(c *Call) { c.Serve() }}, 200, data, false},
		{"flip last byte", FlipByte(-1), 200, data[:15] + "\x99", false},
		{"body", Body([]byte("other")), 200, "other", false},
		{"status", Status(500), 500, "Internal Server Error\n", false},
		{"truncate", Truncate(4), 200, "0123", false},
		{"long content-length", ContentLength(+10), 200, data, true},
		{"short content-length", ContentLength(-6), 200, data[:10], false},
		{"cut off", CutOff(3), 200, "012", true},
		{"huge", Huge(1 << 20), 200, strings.Repeat("x", 1<<20), false},
		{"endless with a limit", Endless(100 << 10), 200, strings.Repeat("x", 100<<10), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newFileServer(t, map[string]string{"objects/f": data})
			s.Handle(Path("objects/f"), tt.fault)
			code, body, err := get(t, s.URL+"/objects/f", 10*time.Second)
			if (err != nil) != tt.wantErr {
				t.Fatalf("GET objects/f with %s: err = %v, want error %v", tt.fault.Name, err, tt.wantErr)
			}
			if code != tt.wantCode {
				t.Errorf("GET objects/f with %s: status = %d, want %d", tt.fault.Name, code, tt.wantCode)
			}
			want := []byte(tt.wantBody)
			if tt.name == "huge" || strings.HasPrefix(tt.name, "endless") {
				want = filler
				for len(want) < len(tt.wantBody) {
					want = append(want, filler...)
				}
				want = want[:len(tt.wantBody)]
			}
			if !bytes.Equal(body, want) {
				t.Errorf("GET objects/f with %s: body = %q, want %q", tt.fault.Name, abbrev(body), abbrev(want))
			}
			reqs := s.Requests()
			if len(reqs) != 1 || reqs[0].Path != "objects/f" || reqs[0].Fault != tt.fault.Name {
				t.Errorf("request log = %v, want one request for objects/f answered by %s", reqs, tt.fault.Name)
			}
		})
	}
}

func abbrev(b []byte) []byte {
	if len(b) > 40 {
		return append(b[:40:40], "..."...)
	}
	return b
}

func TestFailFirstCountsRequests(t *testing.T) {
	t.Parallel()
	s := newFileServer(t, map[string]string{"summary": "S"})
	s.Handle(Path("summary"), FailFirst(2, 503))
	var codes []int
	for range 3 {
		code, _, err := get(t, s.URL+"/summary", 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		codes = append(codes, code)
	}
	if want := []int{503, 503, 200}; !equalInts(codes, want) {
		t.Errorf("GET summary three times with FailFirst(2, 503) = %v, want %v", codes, want)
	}
	if n := s.Count("summary"); n != 3 {
		t.Errorf("Count(summary) = %d, want 3", n)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestBlockingFaultsEndWithTheClient(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name  string
		fault Fault
	}{
		{"stall mid-body", Stall(4)},
		{"no headers", NoHeaders()},
		{"drip", Drip(time.Hour, 1)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newFileServer(t, map[string]string{"x": "0123456789"})
			s.Handle(Path("x"), tt.fault)
			_, _, err := get(t, s.URL+"/x", 200*time.Millisecond)
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Errorf("GET x with %s: err = %v, want a timeout", tt.fault.Name, err)
			}
		})
	}
}

func TestRedirectLoop(t *testing.T) {
	t.Parallel()
	s := newFileServer(t, map[string]string{})
	s.Handle(Path("a"), Redirect("b"))
	s.Handle(Path("b"), Redirect("a"))
	_, _, err := get(t, s.URL+"/a", 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), "stopped after 10 redirects") {
		t.Errorf("GET a (a→b→a) = %v, want Go's redirect limit error", err)
	}
	if n := s.Count("a") + s.Count("b"); n != 10 {
		t.Errorf("requests for a and b = %d, want 11", n)
	}
}

func TestSourceCommitAndSummary(t *testing.T) {
	t.Parallel()
	src := NewSource(t)
	b := src.Commit("os/stable", Tree{Files: map[string]string{"a": "A", "d/e/f": "F", "empty/": ""}, Version: "1"})
	key := Key(7)
	src.Sign(b.Commit, key)
	data := src.Summary(key)

	cm, err := src.Repo.ReadCommit(b.Commit)
	if err != nil {
		t.Fatalf("ReadCommit(%s): %v", b.Commit, err)
	}
	if got := cm.Metadata.Strings(ostree.MetaRefBinding); len(got) != 1 || got[0] != "os/stable" {
		t.Errorf("commit ref binding = %v, want [os/stable]", got)
	}
	root, err := src.Repo.ReadDirTree(cm.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	if len(root.Files) != 1 || len(root.Dirs) != 2 || root.Dirs[0].Name != "d" || root.Dirs[0].Tree != b.Trees["d"] {
		t.Errorf("root dirtree = %+v, want file a, dirs d and empty", root)
	}
	if b.Trees["empty"] != ostree.EmptyDirTree {
		t.Errorf("dirtree of empty/ = %s, want %s", b.Trees["empty"], ostree.EmptyDirTree)
	}
	sum, err := ostree.ParseSummary(data)
	if err != nil {
		t.Fatal(err)
	}
	if r, ok := sum.Lookup("os/stable"); !ok || r.Checksum != b.Commit {
		t.Errorf("summary entry of os/stable = %v, want %s", r, b.Commit)
	}
	sig, err := os.ReadFile(filepath.Join(src.Dir, "summary.sig"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ostree.ParseMetadata(sig)
	if err != nil {
		t.Fatal(err)
	}
	v, _ := m.Get("ostree.sign.ed25519")
	sigs, _ := v.Value.([]any)
	if len(sigs) != 1 || !ed25519.Verify(key.Public().(ed25519.PublicKey), data, sigs[0].([]byte)) {
		t.Errorf("summary.sig = %v, want one valid signature by the key", m)
	}
}
