package pull

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

func TestHandler(t *testing.T) {
	t.Parallel()
	r := newRepo(t, repo.ModeArchive)
	c := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: map[string]entry{"a": {Data: "hello\n"}}})
	signCommit(t, r, c, testKey(t, 1))
	summarize(t, r)
	summary, _, err := r.ReadSummary()
	if err != nil {
		t.Fatal(err)
	}
	heads := filepath.Join(r.Path(), "refs", "heads")
	mustSymlink(t, "os/stable", filepath.Join(heads, "alias"))
	mustSymlink(t, "/etc/hostname", filepath.Join(heads, "absolute"))
	mustSymlink(t, "../../../../../../../../etc/hostname", filepath.Join(heads, "relative"))
	mustSymlink(t, "../../config", filepath.Join(heads, "config"))
	mustSymlink(t, "../../state", filepath.Join(heads, "state"))
	if err := os.WriteFile(filepath.Join(r.Path(), "state", "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Path(), "tmp", "secret"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(r.Path(), "extensions", "hello", "12"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(r.Path(), "extensions", "hello", "12", "hello.raw"), []byte("image"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Past smallFile: sent by http.ServeContent (sendfile), not from one buffered read.
	big := strings.Repeat("0123456789abcdef", (smallFile+4096)/16)
	if err := os.WriteFile(filepath.Join(r.Path(), "extensions", "hello", "12", "big.raw"), []byte(big), 0o644); err != nil {
		t.Fatal(err)
	}
	modified := func(p string) string {
		st, err := os.Stat(filepath.Join(r.Path(), p))
		if err != nil {
			t.Fatal(err)
		}
		return st.ModTime().UTC().Format(http.TimeFormat)
	}
	commitPath := "/" + objectPath(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
	metaPath := "/" + objectPath(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommitMeta})
	var logBuf bytes.Buffer
	h, err := NewHandler(r, slog.New(slog.NewTextHandler(&logBuf, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	etag := func(p string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		return rec.Header().Get("ETag")
	}
	future := time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)

	tests := []struct {
		name       string
		method     string
		path       string
		header     map[string]string
		wantStatus int
		wantBody   string // checked when not ""
		wantType   string // checked when not ""
		wantHeader map[string]string
	}{
		{name: "summary", path: "/summary", wantStatus: 200, wantBody: string(summary), wantType: "application/octet-stream",
			wantHeader: map[string]string{"Content-Length": strconv.Itoa(len(summary)), "Last-Modified": modified("summary"), "Accept-Ranges": "bytes"}},
		{name: "large file", path: "/extensions/hello/12/big.raw", wantStatus: 200, wantBody: big,
			wantHeader: map[string]string{"Content-Length": strconv.Itoa(len(big)), "Last-Modified": modified("extensions/hello/12/big.raw"), "Accept-Ranges": "bytes"}},
		{name: "range of a large file", path: "/extensions/hello/12/big.raw", header: map[string]string{"Range": "bytes=65536-65551"}, wantStatus: 206, wantBody: big[65536:65552]},
		{name: "config", path: "/config", wantStatus: 200, wantType: "text/plain; charset=utf-8"},
		{name: "published extension", path: "/extensions/hello/12/hello.raw", wantStatus: 200, wantBody: "image"},
		{name: "ref", path: "/refs/heads/os/stable", wantStatus: 200, wantBody: c.String() + "\n", wantType: "text/plain; charset=utf-8"},
		{name: "alias ref inside the repository", path: "/refs/heads/alias", wantStatus: 404},
		{name: "symlink in refs to the config", path: "/refs/heads/config", wantStatus: 404},
		{name: "symlinked directory in refs to state", path: "/refs/heads/state/marker", wantStatus: 404},
		{name: "symlink to an absolute path", path: "/refs/heads/absolute", wantStatus: 404},
		{name: "symlink out of the repository", path: "/refs/heads/relative", wantStatus: 404},
		{name: "commit object", path: commitPath, wantStatus: 200, wantType: "application/octet-stream",
			wantHeader: map[string]string{"ETag": `"` + c.String() + `.commit"`, "Cache-Control": "public, max-age=31536000, immutable"}},
		{name: "detached metadata is mutable", path: metaPath, wantStatus: 200, wantHeader: map[string]string{"Cache-Control": "no-cache"}},
		{name: "missing object", path: "/objects/00/" + strings.Repeat("0", 62) + ".commit", wantStatus: 404},
		{name: "HEAD", method: http.MethodHead, path: "/summary", wantStatus: 200,
			wantHeader: map[string]string{"Content-Length": strconv.Itoa(len(summary))}},
		{name: "POST", method: http.MethodPost, path: "/summary", wantStatus: 405, wantHeader: map[string]string{"Allow": "GET, HEAD"}},
		{name: "DELETE", method: http.MethodDelete, path: commitPath, wantStatus: 405},
		{name: "range", path: "/summary", header: map[string]string{"Range": "bytes=0-9"}, wantStatus: 206, wantBody: string(summary[:10])},
		{name: "if-none-match", path: commitPath, header: map[string]string{"If-None-Match": etag(commitPath)}, wantStatus: 304},
		{name: "if-none-match on a mutable file", path: "/summary", header: map[string]string{"If-None-Match": etag("/summary")}, wantStatus: 304},
		{name: "stale if-none-match", path: "/summary", header: map[string]string{"If-None-Match": `"other"`}, wantStatus: 200},
		{name: "if-modified-since", path: "/config", header: map[string]string{"If-Modified-Since": future}, wantStatus: 304},
		{name: "lock file", path: "/.lock", wantStatus: 404},
		{name: "tmp", path: "/tmp/secret", wantStatus: 404},
		{name: "state", path: "/state", wantStatus: 404},
		{name: "root", path: "/", wantStatus: 404},
		{name: "directory", path: "/objects", wantStatus: 404},
		{name: "object directory", path: commitPath[:len("/objects/xx")], wantStatus: 404},
		{name: "dot-dot", path: "/objects/../config", wantStatus: 404},
		{name: "escaped dot-dot", path: "/refs/%2e%2e/%2e%2e/%2e%2e/etc/hostname", wantStatus: 404},
		{name: "double slash", path: "//config", wantStatus: 404},
		{name: "trailing slash", path: "/config/", wantStatus: 404},
		{name: "dotfile below", path: "/refs/heads/.hidden", wantStatus: 404},
		{name: "file as directory", path: "/summary/x", wantStatus: 404},
		{name: "directory as file", path: "/refs", wantStatus: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			method := tt.method
			if method == "" {
				method = http.MethodGet
			}
			req := httptest.NewRequest(method, "http://repo.test"+tt.path, nil)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tt.wantStatus {
				t.Fatalf("%s %s = %d, want %d", method, tt.path, rec.Code, tt.wantStatus)
			}
			if tt.wantBody != "" && rec.Body.String() != tt.wantBody {
				t.Errorf("%s %s body = %q, want %q", method, tt.path, rec.Body.String(), tt.wantBody)
			}
			if tt.wantType != "" && rec.Header().Get("Content-Type") != tt.wantType {
				t.Errorf("%s %s Content-Type = %q, want %q", method, tt.path, rec.Header().Get("Content-Type"), tt.wantType)
			}
			for k, v := range tt.wantHeader {
				if got := rec.Header().Get(k); got != v {
					t.Errorf("%s %s header %s = %q, want %q", method, tt.path, k, got, v)
				}
			}
		})
	}
	t.Cleanup(func() {
		// One access log line per request, with what was sent.
		log := logBuf.String()
		if want := "method=GET path=/summary status=200 bytes=" + strconv.Itoa(len(summary)); !strings.Contains(log, want) {
			t.Errorf("access log = %q, want a line with %q", log, want)
		}
	})
}

func mustSymlink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
}

func TestServeShutsDownWithContext(t *testing.T) {
	t.Parallel()
	r := newRepo(t, repo.ModeArchive)
	buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: map[string]entry{"a": {Data: "a"}}})
	summarize(t, r)
	h, err := NewHandler(r, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, ServeOptions{}) }()
	url := "http://" + ln.Addr().String() + "/summary"
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET %s = %d, want 200", url, resp.StatusCode)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Serve() after cancel = %v, want nil", err)
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Errorf("Dial(%s) after shutdown succeeded, want the listener closed", ln.Addr())
	}
}

// serveRepo serves a repository holding a commit with an incompressible
// file of size bytes on loopback with opts, and returns the base URL, the
// URL path of that file's object and a function returning the access log.
func serveRepo(t *testing.T, size int, opts ServeOptions) (base, object string, accessLog func() string) {
	t.Helper()
	r := newRepo(t, repo.ModeArchive)
	big := make([]byte, size)
	rand.Read(big)
	c := buildCommit(t, r, commitSpec{Ref: "os/stable", Tree: map[string]entry{"big": {Data: string(big)}}})
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := r.ReadDirTree(cm.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logBuf bytes.Buffer
	h, err := NewHandler(r, slog.New(slog.NewTextHandler(lockedWriter{&mu, &logBuf}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, h, opts) }()
	t.Cleanup(func() { cancel(); <-done })
	object = "/" + objectPath(ostree.ObjectName{Checksum: tree.Files[0].Checksum, Type: ostree.ObjectFile})
	return "http://" + ln.Addr().String(), object, func() string {
		mu.Lock()
		defer mu.Unlock()
		return logBuf.String()
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// waitFor polls cond until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// TestServeCutsClientsThatStopReading: a client that asks for a large
// object and reads nothing holds a descriptor and a goroutine only until
// the write timeout.
func TestServeCutsClientsThatStopReading(t *testing.T) {
	t.Parallel()
	const size = 64 << 20 // more than loopback socket buffers hold
	base, object, accessLog := serveRepo(t, size, ServeOptions{WriteTimeout: 300 * time.Millisecond})
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: repo.test\r\n\r\n", object)
	// The handler logs the request when it returns.
	if !waitFor(10*time.Second, func() bool { return strings.Contains(accessLog(), "path="+object) }) {
		t.Fatalf("the response to a client that reads nothing was still being written after 10 s, want it cut after the 300 ms write timeout")
	}
	t.Logf("access log: %s", accessLog())
	n, _ := io.Copy(io.Discard, conn)
	if n >= size {
		t.Errorf("the client read %d bytes, want the response cut short of %d", n, size)
	}
}

// TestServeCapsConnections: past MaxConns, a connection waits until
// another one closes.
func TestServeCapsConnections(t *testing.T) {
	t.Parallel()
	base, _, _ := serveRepo(t, 1, ServeOptions{MaxConns: 2})
	addr := strings.TrimPrefix(base, "http://")
	get := func(timeout time.Duration) error {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := c.Get(base + "/config")
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	// Two clients hold connections open without sending a request.
	var held []net.Conn
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	if err := get(500 * time.Millisecond); err == nil {
		t.Fatalf("GET /config with 2 of 2 connections held succeeded, want it to wait")
	}
	held[0].Close()
	if err := get(5 * time.Second); err != nil {
		t.Fatalf("GET /config after one held connection closed = %v, want success", err)
	}
}
