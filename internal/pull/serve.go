package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"golang.org/x/sys/unix"
)

// published are the top-level entries of a repository that clients read
// (docs/formats/summary.md): single files, and directories whose files are served.
var published = map[string]bool{
	"config": false, repo.SummaryFile: false, repo.SummarySigFile: false,
	"refs": true, "objects": true, "deltas": true, "delta-indexes": true,
	"extensions": true, // per-OS-version system extensions (docs/sysext.md)
}

// Handler serves the files of an archive repository over HTTP the way a
// static web server serves the same directory, so that a plain server or
// a CDN can stand in for it:
//
//   - GET and HEAD only (405 otherwise);
//   - only the files clients read: config, summary, summary.sig and the
//     files under refs/, objects/, deltas/, delta-indexes/ and
//     extensions/ (strata's per-version system extensions). Dotfiles
//     (.lock), tmp/, state/, directories and non-canonical paths are 404;
//   - no symbolic link is followed: every component of the path is opened
//     with O_NOFOLLOW beneath the repository directory, so neither ".." nor
//     a link (even one that stays inside the repository, say refs/heads/x
//     pointing at ../../config or state/) serves anything but the file at
//     that very path;
//   - Range requests, Last-Modified and ETag with If-None-Match /
//     If-Modified-Since (304). The ETag of a content-addressed object is its
//     name, which never changes; other files get one made of size, mtime
//     and inode, and "Cache-Control: no-cache" so caches revalidate them;
//   - objects and the summary are application/octet-stream, refs and
//     config text/plain.
//
// Every request is logged once, with method, path, status, bytes sent and
// duration.
type Handler struct {
	rootFD int // O_PATH descriptor of the repository directory
	log    *slog.Logger
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a handler serving r, which must be an archive
// repository: libostree pulls only from those over HTTP (docs/formats/repository.md). log
// receives the access log; nil discards it. Close the handler when done.
func NewHandler(r *repo.Repo, log *slog.Logger) (*Handler, error) {
	if r.Mode() != repo.ModeArchive {
		return nil, fmt.Errorf("serving repository %s: it is a %s repository, and clients pull only from archive repositories over HTTP: %w",
			r.Path(), r.Mode(), errdefs.ErrFailedPrecondition)
	}
	fd, err := unix.Open(r.Path(), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("serving repository %s: %w", r.Path(), err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{rootFD: fd, log: log}, nil
}

// noOpenat2 is set once openat2 turned out missing (a kernel before 5.6).
var noOpenat2 atomic.Bool

// Close releases the repository directory.
func (h *Handler) Close() error { return unix.Close(h.rootFD) }

// openNoFollow opens rel (slash-separated, clean, relative) beneath dirFD
// one component at a time, with O_NOFOLLOW on each: a symbolic link
// anywhere on the path fails the open (ELOOP or ENOTDIR). The file is
// opened non-blocking, so that a FIFO cannot hang the request; the
// caller serves regular files only. It returns the raw descriptor: small
// files are read with pread(2) and never become an *os.File, whose set-up
// (fcntl, an epoll registration that fails for a regular file) would double
// the system calls of serving one.
func openNoFollow(dirFD int, rel string) (int, error) {
	const flags = unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	if !noOpenat2.Load() {
		// The same rule in one system call (Linux 5.6).
		f, err := unix.Openat2(dirFD, rel, &unix.OpenHow{Flags: flags,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS})
		if err == nil {
			return f, nil
		}
		if err != unix.ENOSYS {
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
		noOpenat2.Store(true)
	}
	parts := strings.Split(rel, "/")
	fd := dirFD
	for _, p := range parts[:len(parts)-1] {
		next, err := unix.Openat(fd, p, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if fd != dirFD {
			unix.Close(fd)
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
		}
		fd = next
	}
	f, err := unix.Openat(fd, parts[len(parts)-1], flags, 0)
	if fd != dirFD {
		unix.Close(fd)
	}
	if err != nil {
		return -1, &fs.PathError{Op: "open", Path: rel, Err: err}
	}
	return f, nil
}

// ServeHTTP answers one request and logs it.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	lw := &loggingWriter{ResponseWriter: w}
	h.serve(lw, req)
	status := lw.status
	if status == 0 {
		status = http.StatusOK
	}
	h.log.Info("request", "method", req.Method, "path", req.URL.Path, "status", status,
		"bytes", lw.bytes, "duration", time.Since(start), "remote", req.RemoteAddr)
}

func (h *Handler) serve(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	rel, ok := publishedPath(req.URL.Path)
	if !ok {
		http.NotFound(w, req)
		return
	}
	fd, err := openNoFollow(h.rootFD, rel)
	if err != nil {
		// Missing files, and paths through a symlink, look the same to
		// the client.
		if !errors.Is(err, fs.ErrNotExist) {
			h.log.Debug("refusing file", "path", rel, "error", err)
		}
		http.NotFound(w, req)
		return
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		http.NotFound(w, req)
		return
	}
	modTime := time.Unix(st.Mtim.Unix())
	hdr := w.Header()
	hdr.Set("Content-Type", contentType(rel))
	if name, ok := objectETag(rel); ok {
		hdr.Set("ETag", `"`+name+`"`)
		hdr.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hdr.Set("ETag", fileETag(st.Size, modTime, st.Ino))
		hdr.Set("Cache-Control", "no-cache")
	}
	if st.Size <= smallFile && req.Method == http.MethodGet && plainGet(req) {
		serveSmall(w, fd, st.Size, modTime)
		unix.Close(fd)
		return
	}
	f := os.NewFile(uintptr(fd), rel)
	defer f.Close()
	http.ServeContent(w, req, "", modTime, f)
}

// smallFile is the size up to which a plain GET is answered from one read into a buffer:
// most objects of an OS tree are this small, and http.ServeContent spends two reads and a
// copy on each before it reaches sendfile(2), which large files use.
const smallFile = 64 << 10

var smallBufs = sync.Pool{New: func() any { b := make([]byte, smallFile); return &b }}

// plainGet reports whether req asks for the whole file unconditionally (no Range, no
// validators), the one case serveSmall answers; http.ServeContent answers the rest.
func plainGet(req *http.Request) bool {
	for _, h := range []string{"Range", "If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range"} {
		if _, ok := req.Header[h]; ok {
			return false
		}
	}
	return true
}

// serveSmall sends the whole of the file fd (size bytes, at most smallFile)
// with the headers http.ServeContent would send for it.
func serveSmall(w http.ResponseWriter, fd int, size int64, modTime time.Time) {
	bp := smallBufs.Get().(*[]byte)
	defer smallBufs.Put(bp)
	b := (*bp)[:size]
	for off := 0; off < len(b); {
		n, err := unix.Pread(fd, b[off:], int64(off))
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			// The file shrank or failed under us: no partial body.
			http.Error(w, "reading the file failed", http.StatusInternalServerError)
			return
		}
		off += n
	}
	hdr := w.Header()
	if !modTime.IsZero() && !modTime.Equal(time.Unix(0, 0)) {
		hdr.Set("Last-Modified", modTime.UTC().Format(http.TimeFormat))
	}
	hdr.Set("Content-Length", strconv.Itoa(len(b)))
	hdr.Set("Accept-Ranges", "bytes")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// publishedPath maps a URL path to a path inside the repository, or
// reports that it is not one that is served.
func publishedPath(p string) (string, bool) {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || strings.ContainsAny(p, "\x00\\") {
		return "", false
	}
	rel := p[1:]
	parts := strings.Split(rel, "/")
	for _, part := range parts {
		if part == "" || strings.HasPrefix(part, ".") {
			return "", false
		}
	}
	isDir, ok := published[parts[0]]
	if !ok || isDir != (len(parts) > 1) {
		return "", false
	}
	return rel, true
}

func contentType(rel string) string {
	if rel == "config" || strings.HasPrefix(rel, "refs/") {
		return "text/plain; charset=utf-8"
	}
	return "application/octet-stream"
}

// objectETag returns the name of a content-addressed object file
// (objects/XX/REST.commit, .dirtree, .dirmeta, .filez), whose bytes never
// change. Detached metadata (.commitmeta) is replaced in place, so it is
// not one.
func objectETag(rel string) (string, bool) {
	dir, file, ok := strings.Cut(strings.TrimPrefix(rel, "objects/"), "/")
	if !ok || len(dir) != 2 || !strings.HasPrefix(rel, "objects/") {
		return "", false
	}
	sum, ext, ok := strings.Cut(file, ".")
	if !ok || !ostree.IsChecksum(dir+sum) {
		return "", false
	}
	switch ext {
	case "commit", "dirtree", "dirmeta", "filez":
		return dir + sum + "." + ext, true
	}
	return "", false
}

// fileETag is the ETag of a mutable file: its size, modification time and inode.
func fileETag(size int64, modTime time.Time, ino uint64) string {
	return fmt.Sprintf(`"%x-%x-%x"`, size, modTime.UnixNano(), ino)
}

// loggingWriter records the status and the body bytes of a response.
type loggingWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *loggingWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *loggingWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(p)
	w.bytes += int64(n)
	return n, err
}

// ReadFrom passes the body on to the response's own ReadFrom, which sends
// a file with sendfile(2) (see deadlineWriter.ReadFrom).
func (w *loggingWriter) ReadFrom(r io.Reader) (int64, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := readFrom(w.ResponseWriter, r)
	w.bytes += n
	return n, err
}

// readFrom copies r into w through w's ReadFrom when it has one.
func readFrom(w io.Writer, r io.Reader) (int64, error) {
	if rf, ok := w.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{w}, r)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *loggingWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// ShutdownGrace is how long Serve lets responses in flight finish after
// its context ends before it closes their connections.
const ShutdownGrace = 10 * time.Second

// ServeOptions bound what clients may hold on a server.
type ServeOptions struct {
	// MaxConns is the most connections served at once; more wait to be
	// accepted. 0 means DefaultMaxConns.
	MaxConns int
	// WriteTimeout cuts a response that cannot send anything for that
	// long (a client that stopped reading); 0 means DefaultWriteTimeout.
	// It bounds each write, not the whole response, so a large object on
	// a slow but live link is not cut.
	WriteTimeout time.Duration
}

// Defaults of ServeOptions. A pull opens at most DefaultParallel
// connections, so the cap admits several clients pulling at full speed
// while a flood of idle or slow connections cannot exhaust descriptors.
const (
	DefaultMaxConns     = 256
	DefaultWriteTimeout = time.Minute
)

// Serve serves h on ln until ctx ends (the CLI cancels it on SIGINT or
// SIGTERM), then shuts down gracefully: it stops accepting, lets responses
// in flight finish for up to ShutdownGrace, and closes what is left. It
// returns nil after a shutdown asked for by ctx. Request headers must
// arrive within 10 seconds, an idle connection is closed after 2 minutes,
// and opts bound the connections and writes.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, opts ServeOptions) error {
	if opts.MaxConns <= 0 {
		opts.MaxConns = DefaultMaxConns
	}
	if opts.WriteTimeout <= 0 {
		opts.WriteTimeout = DefaultWriteTimeout
	}
	ln = &limitListener{Listener: ln, sem: make(chan struct{}, opts.MaxConns)}
	srv := &http.Server{
		Handler:           writeDeadlines(h, opts.WriteTimeout),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serving on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		srv.Close()
	}
	<-done
	if err != nil {
		return fmt.Errorf("shutting down the server on %s: %w", ln.Addr(), err)
	}
	return nil
}

// writeDeadlines gives every write of a response at least 7/8 of d to complete. The deadline
// is moved on only once an eighth of d has passed since it was last set: setting a connection's
// deadline takes a runtime lock, and a small answer (a graph, a summary) is one write made
// right after the request's own deadline was set.
func writeDeadlines(h http.Handler, d time.Duration) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		rc := http.NewResponseController(w)
		set := time.Now()
		rc.SetWriteDeadline(set.Add(d))
		h.ServeHTTP(&deadlineWriter{ResponseWriter: w, rc: rc, d: d, set: set}, req)
	})
}

type deadlineWriter struct {
	http.ResponseWriter
	rc  *http.ResponseController
	d   time.Duration
	set time.Time // when the deadline was last set
}

func (w *deadlineWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(w.set) >= w.d/8 {
		w.rc.SetWriteDeadline(now.Add(w.d))
		w.set = now
	}
	return w.ResponseWriter.Write(p)
}

// sendChunk is the most a deadlineWriter.ReadFrom hands to one ReadFrom of
// the connection under one write deadline: a response from a file goes out
// with sendfile(2), in pieces small enough that the deadline still bounds
// a stretch of little progress, not the whole response.
const sendChunk = 64 << 10

// ReadFrom lets a file reach the connection's ReadFrom (sendfile(2), the
// file's pages go to the socket without a copy through this process),
// renewing the write deadline for each sendChunk.
func (w *deadlineWriter) ReadFrom(r io.Reader) (int64, error) {
	src, left := r, int64(-1)
	if lr, ok := r.(*io.LimitedReader); ok {
		src, left = lr.R, lr.N
	}
	var total int64
	for left != 0 {
		chunk := int64(sendChunk)
		if left > 0 {
			chunk = min(chunk, left)
		}
		w.rc.SetWriteDeadline(time.Now().Add(w.d))
		n, err := readFrom(w.ResponseWriter, &io.LimitedReader{R: src, N: chunk})
		total += n
		if left > 0 {
			left -= n
		}
		if err != nil || n < chunk {
			if lr, ok := r.(*io.LimitedReader); ok {
				lr.N = left
			}
			return total, err
		}
	}
	if lr, ok := r.(*io.LimitedReader); ok {
		lr.N = 0
	}
	return total, nil
}

// Unwrap lets http.ResponseController reach the connection.
func (w *deadlineWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// limitListener accepts at most cap(sem) connections at once, like
// golang.org/x/net/netutil.LimitListener: Accept waits for a slot.
type limitListener struct {
	net.Listener
	sem chan struct{}
}

func (l *limitListener) Accept() (net.Conn, error) {
	l.sem <- struct{}{}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

// ReadFrom keeps the connection's own ReadFrom (sendfile(2) from a file)
// reachable through the wrapper.
func (c *limitConn) ReadFrom(r io.Reader) (int64, error) { return readFrom(c.Conn, r) }

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
