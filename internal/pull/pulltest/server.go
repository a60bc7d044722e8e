package pulltest

import (
	"bufio"
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
)

// Server serves the files of a directory over HTTP on 127.0.0.1, like any static web server
// publishing an archive repository, except for the requests that a rule hands to a Fault.
type Server struct {
	// URL is the server's base URL, without a trailing slash.
	URL string

	dir     string
	files   http.Handler
	srv     *httptest.Server
	release chan struct{}

	mu    sync.Mutex
	rules []*rule
	log   []*Request
}

// Request is one logged request.
type Request struct {
	// Path is the URL path without its leading "/" ("summary", "objects/ab/cd….commit").
	Path string
	// Fault is the name of the fault that answered, "" for the plain file server.
	Fault  string
	status atomic.Int64
	sent   atomic.Int64
}

// Status returns the status sent, 0 while (or if) no header has been sent.
func (r *Request) Status() int { return int(r.status.Load()) }

func (r *Request) setStatus(code int) { r.status.CompareAndSwap(0, int64(code)) }

// Sent returns the number of body bytes written for the request so far.
func (r *Request) Sent() int64 { return r.sent.Load() }

// Match selects requests by URL path (without the leading "/").
type Match func(path string) bool

// Path matches exactly one path.
func Path(p string) Match { return func(path string) bool { return path == p } }

// Suffix matches every path that ends in s, such as ".dirtree" or ".filez".
func Suffix(s string) Match { return func(path string) bool { return strings.HasSuffix(path, s) } }

// Object matches the URL path of one object in an archive repository.
func Object(n ostree.ObjectName) Match { return Path(ObjectPath(n)) }

// ObjectPath is the URL path of an object in an archive repository (docs/formats/summary.md).
func ObjectPath(n ostree.ObjectName) string {
	return "objects/" + ostree.LoosePath(n.Checksum, n.Type, true)
}

type rule struct {
	match Match
	fault Fault
	n     atomic.Int64
}

// NewServer starts a server for dir. It is stopped when the test ends: stalled responses are
// released first, then client connections are closed.
func NewServer(t testing.TB, dir string) *Server {
	t.Helper()
	s := &Server{dir: dir, files: http.FileServer(http.Dir(dir)), release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = s.srv.URL
	t.Cleanup(func() {
		close(s.release)
		s.srv.CloseClientConnections()
		s.srv.Close()
	})
	return s
}

// Dir returns the directory the server publishes.
func (s *Server) Dir() string { return s.dir }

// Handle makes f answer the requests that m selects. Rules are tried in the order they were
// added; the first match wins.
func (s *Server) Handle(m Match, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = append(s.rules, &rule{match: m, fault: f})
}

// Reset removes every rule: from now on the server is honest.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rules = nil
}

// ClearLog empties the request log.
func (s *Server) ClearLog() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log = nil
}

// Requests returns a copy of the request log, in arrival order.
func (s *Server) Requests() []*Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Request(nil), s.log...)
}

// Count returns how many requests asked for path.
func (s *Server) Count(path string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Path == path {
			n++
		}
	}
	return n
}

// Sent returns the body bytes written for all requests so far.
func (s *Server) Sent() int64 {
	var n int64
	for _, r := range s.Requests() {
		n += r.Sent()
	}
	return n
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	path := strings.TrimPrefix(r.URL.Path, "/")
	req := &Request{Path: path}
	var match *rule
	s.mu.Lock()
	s.log = append(s.log, req)
	for _, ru := range s.rules {
		if ru.match(path) {
			match = ru
			break
		}
	}
	s.mu.Unlock()
	cw := &countingWriter{ResponseWriter: w, req: req}
	if match == nil {
		s.files.ServeHTTP(cw, r)
		return
	}
	req.Fault = match.fault.Name
	match.fault.Serve(&Call{
		W: cw, R: r, Path: path, N: int(match.n.Add(1)),
		Released: s.release, files: s.files, req: req,
	})
}

// Call is one request handed to a Fault.
type Call struct {
	W    http.ResponseWriter
	R    *http.Request
	Path string
	// N counts the requests this rule has answered: 1 for the first.
	N int
	// Released is closed when the test ends; a fault that blocks must also wait on it.
	Released <-chan struct{}

	files http.Handler
	req   *Request
}

// Serve answers with the real file.
func (c *Call) Serve() { c.files.ServeHTTP(c.W, c.R) }

// Real returns the status and body the file server would send.
func (c *Call) Real() (int, []byte) {
	rec := httptest.NewRecorder()
	c.files.ServeHTTP(rec, c.R)
	return rec.Code, rec.Body.Bytes()
}

// Gone returns a channel closed when the client went away or the test ended.
func (c *Call) Gone() <-chan struct{} {
	done := make(chan struct{})
	go func() {
		select {
		case <-c.R.Context().Done():
		case <-c.Released:
		}
		close(done)
	}()
	return done
}

// raw takes over the connection to write a response byte by byte, Content-Length included, as
// no well-behaved server would. The connection is closed when write returns.
func (c *Call) raw(status int, contentLength int64, write func(w *bufio.Writer) error) {
	c.req.setStatus(status)
	conn, brw, err := http.NewResponseController(c.W).Hijack()
	if err != nil {
		panic("pulltest: internal error: hijacking the connection: " + err.Error())
	}
	defer conn.Close()
	w := brw.Writer
	var head bytes.Buffer
	head.WriteString("HTTP/1.1 " + strconv.Itoa(status) + " " + http.StatusText(status) + "\r\n")
	head.WriteString("Content-Type: application/octet-stream\r\n")
	if contentLength >= 0 {
		head.WriteString("Content-Length: " + strconv.FormatInt(contentLength, 10) + "\r\n")
	}
	head.WriteString("Connection: close\r\n\r\n")
	if _, err := w.Write(head.Bytes()); err != nil {
		return
	}
	cw := &rawCounter{w: w, req: c.req}
	bw := bufio.NewWriterSize(cw, 4096)
	if write(bw) == nil {
		_ = bw.Flush()
	}
	_ = w.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
}

type rawCounter struct {
	w   *bufio.Writer
	req *Request
}

func (r *rawCounter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	r.req.sent.Add(int64(n))
	if err == nil {
		err = r.w.Flush()
	}
	return n, err
}

// countingWriter records the status and the body bytes of a response.
type countingWriter struct {
	http.ResponseWriter
	req *Request
}

func (w *countingWriter) WriteHeader(code int) {
	w.req.setStatus(code)
	w.ResponseWriter.WriteHeader(code)
}

func (w *countingWriter) Write(p []byte) (int, error) {
	w.req.setStatus(http.StatusOK)
	n, err := w.ResponseWriter.Write(p)
	w.req.sent.Add(int64(n))
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (Flush, Hijack).
func (w *countingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
