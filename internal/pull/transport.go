package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// RetryPolicy says how transient failures (5xx, 408, 429, connection
// errors, timeouts, stalls, bodies cut short) are retried. A 404 or any
// other client error, and a response that fails verification, is never
// retried.
type RetryPolicy struct {
	// Attempts is the number of tries per request, the first included;
	// 0 means 5.
	Attempts int
	// Base is the wait before the first retry, doubled for each further
	// one up to Max, with ±25% jitter; 0 means 250ms and 8s.
	Base, Max time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Base <= 0 {
		p.Base = 250 * time.Millisecond
	}
	if p.Max <= 0 {
		p.Max = 8 * time.Second
	}
	return p
}

func (p RetryPolicy) backoff(retry int) time.Duration {
	d := p.Base
	for i := 1; i < retry && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// NewClient returns the HTTP client Pull uses when Options.Client is nil:
// one pool of keep-alive connections sized for the parallel fetches, the
// environment's proxy settings, no transparent compression (objects are
// compressed already, and sizes are checked on the wire bytes), bounded
// connection and header waits, and file:// URLs for local repositories.
func NewClient() *http.Client {
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   2 * DefaultParallel,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   15 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	tr.RegisterProtocol("file", http.NewFileTransport(http.Dir("/")))
	return &http.Client{Transport: tr, CheckRedirect: checkRedirect}
}

// checkRedirect follows at most 10 redirects, like Go's default, and only to http and https
// URLs: the transport also serves file:// (for local remotes), and a remote server must not
// be able to point the client at local files with a redirect. A pull applies its own,
// stricter redirect policy on top (transport.checkRedirect).
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	if s := req.URL.Scheme; s != "http" && s != "https" {
		return &redirectError{from: via[len(via)-1].URL.String(), to: req.URL.String(), why: "only http and https redirects are followed"}
	}
	return nil
}

// redirectError is a redirect the client refused: the server asked for
// something the remote's settings do not allow, which no retry changes.
type redirectError struct{ from, to, why string }

func (e *redirectError) Error() string {
	return fmt.Sprintf("refusing the redirect from %s to %s: %s", e.from, e.to, e.why)
}

func (e *redirectError) Unwrap() error { return errdefs.ErrInvalid }

// checkRedirect is the redirect policy of a pull, applied before the
// client's own: the scheme stays the same (https never goes to http,
// and http may only go up to https), and the host stays the same unless
// the remote allows cross-host redirects (a mirror network that sends
// clients to other hosts). A remote's TLS and signatures still hold
// across a redirect; what this keeps is that a remote configured as
// https is only ever read over https, and that a server cannot send the
// client to an arbitrary host (an internal address, say) on its own.
func (t *transport) checkRedirect(req *http.Request, via []*http.Request) error {
	from, to := via[len(via)-1].URL, req.URL
	orig := via[0].URL
	switch {
	case len(via) >= 10:
		return &redirectError{from: from.String(), to: to.String(), why: "more than 10 redirects"}
	case to.Scheme != orig.Scheme && !(orig.Scheme == "http" && to.Scheme == "https"):
		return &redirectError{from: from.String(), to: to.String(), why: "redirects keep the scheme of the remote URL (" + orig.Scheme + ")"}
	case !t.crossHost && !strings.EqualFold(to.Host, orig.Host):
		return &redirectError{from: from.String(), to: to.String(), why: "redirects to another host are not allowed for this remote"}
	}
	if t.clientCheck != nil {
		return t.clientCheck(req, via)
	}
	return nil
}

// Causes of a request cancelled by the transport itself.
var (
	errStalled = errors.New("no data received")
	errTimeout = errors.New("request timed out")
)

// transport fetches files relative to a base URL with retries, a total
// timeout and a stall timeout per request, and counts the body bytes
// received.
type transport struct {
	client  *http.Client
	base    *url.URL
	retry   RetryPolicy
	timeout time.Duration
	stall   time.Duration
	bytes   atomic.Int64
	// crossHost allows redirects to other hosts; clientCheck is the
	// client's own CheckRedirect, applied after the transport's policy.
	crossHost   bool
	clientCheck func(*http.Request, []*http.Request) error
}

func newTransport(client *http.Client, base string, retry RetryPolicy, timeout, stall time.Duration, crossHost bool) (*transport, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
		return nil, fmt.Errorf("remote URL %q is not an http, https or file URL: %w", base, errdefs.ErrInvalid)
	}
	if !strings.HasSuffix(u.Path, "/") {
		u.Path += "/"
		u.RawPath = ""
	}
	t := &transport{base: u, retry: retry.withDefaults(), timeout: timeout, stall: stall, crossHost: crossHost, clientCheck: client.CheckRedirect}
	// A copy of the client that shares its connections but not its
	// redirect policy.
	c := *client
	c.CheckRedirect = t.checkRedirect
	t.client = &c
	return t, nil
}

func (t *transport) url(rel string) string { return t.base.JoinPath(rel).String() }

// withRetry runs attempt until it succeeds, fails for good, or the retry
// policy is exhausted. Only errors wrapping errdefs.ErrUnavailable are
// retried.
func (t *transport) withRetry(ctx context.Context, attempt func(ctx context.Context) error) error {
	for try := 1; ; try++ {
		err := attempt(ctx)
		if err == nil || !errors.Is(err, errdefs.ErrUnavailable) || try >= t.retry.Attempts {
			return err
		}
		if ctx.Err() != nil {
			return err
		}
		timer := time.NewTimer(t.retry.backoff(try))
		select {
		case <-ctx.Done():
			timer.Stop()
			return err
		case <-timer.C:
		}
	}
}

// body is an open response body. Reading it fails with an error wrapping
// errdefs.ErrUnavailable when the connection breaks, the request times
// out or stalls, or the body ends before its Content-Length.
type body struct {
	url      string
	r        io.ReadCloser
	length   int64 // Content-Length, -1 if unknown
	ctx      context.Context
	cancel   context.CancelCauseFunc
	start    time.Time
	timeout  time.Duration
	deadline *time.Timer // ends the request after timeout
	stall    time.Duration
	stalled  *time.Timer // ends it after stall without data
	count    *atomic.Int64
}

// open sends one GET for rel. A 404 is errdefs.ErrNotFound.
func (t *transport) open(ctx context.Context, rel string) (*body, error) {
	u := t.url(rel)
	rctx, cancel := context.WithCancelCause(ctx)
	b := &body{url: u, ctx: rctx, cancel: cancel, start: time.Now(), timeout: t.timeout, stall: t.stall, count: &t.bytes}
	if t.timeout > 0 {
		b.deadline = time.AfterFunc(t.timeout, func() { cancel(errTimeout) })
	}
	if t.stall > 0 {
		b.stalled = time.AfterFunc(t.stall, func() { cancel(errStalled) })
	}
	req, err := http.NewRequestWithContext(rctx, http.MethodGet, u, nil)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	resp, err := t.client.Do(req)
	var refused *redirectError
	if errors.As(err, &refused) {
		b.Close()
		return nil, fmt.Errorf("GET %s: %w", u, refused)
	}
	if err != nil {
		err = b.classify(err)
		b.Close()
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		b.Close()
		return nil, statusError(u, resp.StatusCode)
	}
	b.r, b.length = resp.Body, resp.ContentLength
	return b, nil
}

// extendTimeout lets the request run for d in all, if that is longer than
// its timeout: a large object may take longer than the default allows.
func (b *body) extendTimeout(d time.Duration) {
	if b.deadline == nil || d <= b.timeout {
		return
	}
	b.timeout = d
	b.deadline.Reset(d - time.Since(b.start))
}

func statusError(u string, code int) error {
	switch {
	case code == http.StatusNotFound:
		return fmt.Errorf("GET %s: %s: %w", u, http.StatusText(code), errdefs.ErrNotFound)
	case code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests:
		return fmt.Errorf("GET %s: HTTP %d %s: %w", u, code, http.StatusText(code), errdefs.ErrUnavailable)
	}
	return fmt.Errorf("GET %s: HTTP %d %s: %w", u, code, http.StatusText(code), errdefs.ErrFailedPrecondition)
}

// classify wraps a transport error: connection and timeout failures are
// transient unless the caller's own context ended.
func (b *body) classify(err error) error {
	switch cause := context.Cause(b.ctx); {
	case errors.Is(cause, errStalled):
		return fmt.Errorf("GET %s: %w for %s: %w", b.url, errStalled, b.stall, errdefs.ErrUnavailable)
	case errors.Is(cause, errTimeout):
		return fmt.Errorf("GET %s: %w after %s: %w", b.url, errTimeout, b.timeout, errdefs.ErrUnavailable)
	case cause != nil:
		return fmt.Errorf("GET %s: %w", b.url, err) // the caller gave up
	}
	return fmt.Errorf("GET %s: %w: %w", b.url, errdefs.ErrUnavailable, err)
}

func (b *body) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if n > 0 {
		b.count.Add(int64(n))
		if b.stalled != nil {
			b.stalled.Reset(b.stall)
		}
	}
	if err != nil && err != io.EOF {
		err = b.classify(err)
	}
	return n, err
}

// Close releases the response and its request context.
func (b *body) Close() error {
	for _, t := range []*time.Timer{b.stalled, b.deadline} {
		if t != nil {
			t.Stop()
		}
	}
	var err error
	if b.r != nil {
		err = b.r.Close()
	}
	b.cancel(nil)
	return err
}

// get fetches a whole file of at most limit bytes, with retries. A file
// that is (or claims to be) larger is errdefs.ErrCorrupt, never retried.
func (t *transport) get(ctx context.Context, rel string, limit int64) ([]byte, error) {
	var out []byte
	err := t.withRetry(ctx, func(ctx context.Context) error {
		b, err := t.open(ctx, rel)
		if err != nil {
			return err
		}
		defer b.Close()
		if b.length > limit {
			return fmt.Errorf("GET %s: %d bytes, more than the %d allowed: %w", b.url, b.length, limit, errdefs.ErrCorrupt)
		}
		buf, err := readAtMost(b, b.length, limit)
		if err != nil {
			return err
		}
		if buf == nil {
			return fmt.Errorf("GET %s: more than the %d bytes allowed: %w", b.url, limit, errdefs.ErrCorrupt)
		}
		out = buf
		return nil
	})
	return out, err
}

// readAtMost reads r to its end; it returns nil (and no error) if that is more than limit
// bytes, having read limit+1 of them. A body of known length is
// read into one allocation; one of unknown length in 1 MiB chunks joined at the end, so that
// an endless body costs about limit bytes of memory instead of the two to three times that
// io.ReadAll's growth takes.
func readAtMost(r io.Reader, length, limit int64) ([]byte, error) {
	if length >= 0 && length <= limit {
		buf := make([]byte, length)
		if _, err := io.ReadFull(r, buf); err != nil {
			return nil, err
		}
		return buf, nil
	}
	const chunk = 1 << 20
	var chunks [][]byte
	var total int64
	for total <= limit {
		c := make([]byte, min(chunk, limit+1-total))
		n, err := io.ReadFull(r, c)
		chunks = append(chunks, c[:n])
		total += int64(n)
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	if total > limit {
		return nil, nil
	}
	buf := make([]byte, 0, total)
	for _, c := range chunks {
		buf = append(buf, c...)
	}
	return buf, nil
}

// getOptional is get for a file that may be absent: a 404 gives nil, nil.
func (t *transport) getOptional(ctx context.Context, rel string, limit int64) ([]byte, error) {
	b, err := t.get(ctx, rel, limit)
	if errors.Is(err, errdefs.ErrNotFound) {
		return nil, nil
	}
	return b, err
}
