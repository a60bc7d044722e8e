package pull_test

import (
	"context"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
)

// transportAttack is a hostile answer to the request for one object of the next commit.
type transportAttack struct {
	name string
	// object picks the attacked object of e.next.
	object func(e *attackEnv) ostree.ObjectName
	fault  pulltest.Fault
	// opts adjusts the pull options (timeouts for the stalls).
	opts    func(o *pull.Options)
	wantIs  error
	wantMsg []string
	// wantTries is how many requests for the object the client must make: 1 for errors it
	// must not retry, the retry policy's attempts (3) for transient ones.
	wantTries int
	// maxSent bounds the body bytes the server got to send for the object: the client must
	// stop reading a body it cannot use (0: no bound checked).
	maxSent int64
}

func fileOf(p string) func(e *attackEnv) ostree.ObjectName {
	return func(e *attackEnv) ostree.ObjectName { return e.next.FileObject(p) }
}

func treeOf(p string) func(e *attackEnv) ostree.ObjectName {
	return func(e *attackEnv) ostree.ObjectName { return e.next.TreeObject(p) }
}

func commitOf(e *attackEnv) ostree.ObjectName { return e.next.CommitObject() }

// headerThenEndless sends the real .filez header (a valid object's) and then deflate-looking
// bytes without end: the declared size must bound what the client reads.
func headerThenEndless(limit int64) pulltest.Fault {
	return pulltest.Fault{Name: "header then endless", Serve: func(c *pulltest.Call) {
		_, body := c.Real()
		hlen := 8 + int(body[0])<<24 | int(body[1])<<16 | int(body[2])<<8 | int(body[3])
		c.W.WriteHeader(http.StatusOK)
		_, _ = c.W.Write(body[:hlen])
		// A stored (uncompressed) deflate block header that never ends its data would be
		// refused early; filler bytes make the inflater read on.
		chunk := []byte(strings.Repeat("\x00", 64<<10))
		gone := c.Gone()
		for sent := int64(hlen); sent < limit; sent += int64(len(chunk)) {
			select {
			case <-gone:
				return
			default:
			}
			if _, err := c.W.Write(chunk); err != nil {
				return
			}
		}
	}}
}

// redirectTo answers 302 with an absolute Location, on any scheme.
func redirectTo(loc string) pulltest.Fault {
	return pulltest.Fault{Name: "redirect to " + loc, Serve: func(c *pulltest.Call) {
		http.Redirect(c.W, c.R, loc, http.StatusFound)
	}}
}

const (
	mib = int64(1 << 20)
	gib = int64(1 << 30)
)

func stallOpts(o *pull.Options) { o.StallTimeout = 150 * time.Millisecond }

var transportAttacks = []transportAttack{
	{
		name: "content body truncated (well framed)", object: fileOf("usr/lib/libtool.so"),
		fault: pulltest.Truncate(60), wantIs: errdefs.ErrCorrupt, wantTries: 1,
	},
	{
		name: "dirtree body truncated (well framed)", object: treeOf("usr/bin"),
		fault: pulltest.Truncate(10), wantIs: errdefs.ErrCorrupt, wantMsg: []string{"hashes to"}, wantTries: 1,
	},
	{
		name: "commit body truncated (well framed)", object: commitOf,
		fault: pulltest.Truncate(100), wantIs: errdefs.ErrCorrupt, wantMsg: []string{"hashes to"}, wantTries: 1,
	},
	{
		name: "content connection closed mid-body", object: fileOf("usr/lib/libtool.so"),
		fault: pulltest.CutOff(50), wantIs: errdefs.ErrUnavailable, wantMsg: []string{"GET http://"}, wantTries: 3,
	},
	{
		name: "dirtree Content-Length longer than the body", object: treeOf(""),
		fault: pulltest.ContentLength(+100), wantIs: errdefs.ErrUnavailable, wantMsg: []string{"GET http://"}, wantTries: 3,
	},
	{
		name: "content Content-Length longer than the body", object: fileOf("usr/bin/tool"),
		fault: pulltest.ContentLength(+1), wantIs: errdefs.ErrUnavailable, wantMsg: []string{"GET http://"}, wantTries: 3,
	},
	{
		name: "dirtree Content-Length shorter than the body", object: treeOf("usr/bin"),
		fault: pulltest.ContentLength(-5), wantIs: errdefs.ErrCorrupt, wantMsg: []string{"hashes to"}, wantTries: 1,
	},
	{
		name: "content with data after its deflate stream", object: fileOf("usr/lib/libtool.so"),
		fault:  pulltest.Tamper(func(b []byte) []byte { return append(b, "trailing"...) }),
		wantIs: errdefs.ErrCorrupt, wantMsg: []string{"after the end"}, wantTries: 1,
	},
	{
		name: "content Content-Length shorter than the body", object: fileOf("usr/lib/libtool.so"),
		fault: pulltest.ContentLength(-5), wantIs: errdefs.ErrCorrupt, wantTries: 1,
	},
	{
		name: "huge dirtree (11 MiB declared)", object: treeOf(""),
		fault: pulltest.Huge(11 * mib), wantIs: errdefs.ErrCorrupt, wantMsg: []string{"more than"}, wantTries: 1, maxSent: 10 * mib,
	},
	{
		name: "huge commit (11 MiB declared)", object: commitOf,
		fault: pulltest.Huge(11 * mib), wantIs: errdefs.ErrCorrupt, wantMsg: []string{"more than"}, wantTries: 1, maxSent: 10 * mib,
	},
	{
		name: "endless dirtree", object: treeOf("usr"),
		fault: pulltest.Endless(gib), wantIs: errdefs.ErrCorrupt, wantMsg: []string{"more than"}, wantTries: 1, maxSent: 24 * mib,
	},
	{
		name: "endless garbage content", object: fileOf("usr/bin/tool"),
		fault: pulltest.Endless(gib), wantIs: errdefs.ErrCorrupt, wantTries: 1, maxSent: 16 * mib,
	},
	{
		name: "valid content header, then endless data", object: fileOf("usr/bin/tool"),
		fault: headerThenEndless(gib), wantIs: errdefs.ErrCorrupt, wantTries: 1, maxSent: 16 * mib,
	},
	{
		name: "content stalls mid-body", object: fileOf("usr/lib/libtool.so"),
		fault: pulltest.Stall(20), opts: stallOpts, wantIs: errdefs.ErrUnavailable,
		wantMsg: []string{"GET http://", "no data received"}, wantTries: 3,
	},
	{
		name: "dirtree headers never come", object: treeOf("usr/bin"),
		fault: pulltest.NoHeaders(), opts: stallOpts, wantIs: errdefs.ErrUnavailable,
		wantMsg: []string{"GET http://", "no data received"}, wantTries: 3,
	},
	{
		name: "commit headers never come", object: commitOf,
		fault: pulltest.NoHeaders(), opts: stallOpts, wantIs: errdefs.ErrUnavailable,
		wantMsg: []string{"GET http://", "no data received"}, wantTries: 3,
	},
	{
		name: "content drips one byte every 5ms", object: fileOf("usr/lib/libtool.so"),
		fault: pulltest.Drip(5*time.Millisecond, 1),
		opts:  func(o *pull.Options) { o.RequestTimeout, o.StallTimeout = 300*time.Millisecond, time.Second },
		// Each byte resets the stall timer; the per-request timeout ends it.
		wantIs: errdefs.ErrUnavailable, wantMsg: []string{"GET http://"}, wantTries: 3,
	},
	{
		name: "content missing (404)", object: fileOf("usr/bin/tool"),
		fault: pulltest.Status(http.StatusNotFound), wantIs: errdefs.ErrNotFound, wantMsg: []string{"Not Found"}, wantTries: 1,
	},
	{
		name: "dirtree missing (404)", object: treeOf("usr/lib"),
		fault: pulltest.Status(http.StatusNotFound), wantIs: errdefs.ErrNotFound, wantMsg: []string{"Not Found"}, wantTries: 1,
	},
	{
		name: "content forbidden (403)", object: fileOf("usr/bin/tool"),
		fault: pulltest.Status(http.StatusForbidden), wantIs: errdefs.ErrFailedPrecondition, wantMsg: []string{"403"}, wantTries: 1,
	},
	{
		name: "content always 503", object: fileOf("usr/bin/tool"),
		fault: pulltest.Status(http.StatusServiceUnavailable), wantIs: errdefs.ErrUnavailable, wantMsg: []string{"503"}, wantTries: 3,
	},
	{
		name: "content redirects to itself", object: fileOf("usr/bin/tool"),
		fault:  pulltest.Fault{Name: "redirect loop", Serve: func(c *pulltest.Call) { http.Redirect(c.W, c.R, "/"+c.Path, http.StatusFound) }},
		wantIs: errdefs.ErrInvalid, wantMsg: []string{"more than 10 redirects"}, wantTries: 10, // one attempt, not retried
	},
	{
		name: "content redirects to a local file", object: fileOf("usr/bin/tool"),
		fault: redirectTo("file:///etc/passwd"), wantIs: errdefs.ErrInvalid, wantMsg: []string{"refusing the redirect", "file:///etc/passwd"}, wantTries: 1,
	},
}

// TestAttackTransport answers one object's request with a broken or hostile response.
func TestAttackTransport(t *testing.T) {
	t.Parallel()
	for _, tt := range transportAttacks {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachClient(t, func(t *testing.T, e *attackEnv, update bool) {
				n := tt.object(e)
				path := pulltest.ObjectPath(n)
				e.srv.Handle(pulltest.Path(path), tt.fault)
				opts := e.options()
				if tt.opts != nil {
					tt.opts(&opts)
				}
				_, err := pull.Pull(context.Background(), e.client, opts)
				checkErr(t, err, tt.wantIs, append([]string{n.Checksum.String()}, tt.wantMsg...)...)
				tries := e.srv.Count(path)
				if tt.wantTries > 0 && tries != tt.wantTries {
					t.Errorf("requests for %s = %d, want %d", path, tries, tt.wantTries)
				}
				if tries > 11*3 {
					t.Errorf("requests for %s = %d: the client does not stop", path, tries)
				}
				if tt.maxSent > 0 {
					for _, r := range e.srv.Requests() {
						if r.Path == path && r.Sent() > tt.maxSent {
							t.Errorf("the server sent %d bytes of %s before the client gave up, want at most %d", r.Sent(), path, tt.maxSent)
						}
					}
				}
				checkAftermath(t, e, n, e.wantRef(update))
				checkHonestPull(t, e, e.options())
			})
		})
	}
}

// TestAttackRetries: errors that go away are retried, and the pull then succeeds.
func TestAttackRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		path   func(e *attackEnv) string
		fault  pulltest.Fault
		summay bool
	}{
		{"summary 500 twice", func(*attackEnv) string { return "summary" }, pulltest.FailFirst(2, 500), true},
		{"ref 502 twice", func(*attackEnv) string { return "refs/heads/" + attackRef }, pulltest.FailFirst(2, 502), false},
		{"commit 503 twice", func(e *attackEnv) string { return pulltest.ObjectPath(e.next.CommitObject()) }, pulltest.FailFirst(2, 503), false},
		{"dirtree 500 twice", func(e *attackEnv) string { return pulltest.ObjectPath(e.next.TreeObject("usr/bin")) }, pulltest.FailFirst(2, 500), false},
		{"content 500 twice", func(e *attackEnv) string { return pulltest.ObjectPath(e.next.FileObject("usr/bin/tool")) }, pulltest.FailFirst(2, 500), false},
		{"content 429 twice", func(e *attackEnv) string { return pulltest.ObjectPath(e.next.FileObject("usr/bin/tool")) }, pulltest.FailFirst(2, 429), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			forEachClient(t, func(t *testing.T, e *attackEnv, update bool) {
				if tt.summay {
					e.src.Summary()
				}
				path := tt.path(e)
				e.srv.Handle(pulltest.Path(path), tt.fault)
				res, err := pull.Pull(context.Background(), e.client, e.options())
				if err != nil {
					t.Fatalf("Pull() with %s = %v, want success on the third try", tt.fault.Name, err)
				}
				if n := e.srv.Count(path); n != 3 {
					t.Errorf("requests for %s = %d, want 3 (two failures, one success)", path, n)
				}
				if len(res.Refs) != 1 || res.Refs[0].Commit != e.next.Commit {
					t.Errorf("Pull() refs = %+v, want %s at %s", res.Refs, attackRef, e.next.Commit)
				}
				if got, err := e.client.ReadRef("", attackRef); err != nil || got != e.next.Commit {
					t.Errorf("ReadRef(%s) = %s, %v; want %s", attackRef, got, err, e.next.Commit)
				}
				checkFsck(t, e.client)
			})
		})
	}
}

// TestAttackEndlessBodyMemory serves 1 GiB without end for each kind of file the client
// reads, and checks that the client's heap grows by less than 64 MiB while it does. It does
// not run in parallel: the heap is the process's.
func TestAttackEndlessBodyMemory(t *testing.T) {
	object := func(n func(e *attackEnv) ostree.ObjectName) func(e *attackEnv) (string, string) {
		return func(e *attackEnv) (string, string) { return pulltest.ObjectPath(n(e)), n(e).Checksum.String() }
	}
	file := func(p string) func(e *attackEnv) (string, string) {
		return func(*attackEnv) (string, string) { return p, p }
	}
	tests := []struct {
		name string
		// target returns the URL path to attack and what the error must mention.
		target func(e *attackEnv) (path, mention string)
		// summary: publish a summary, so that the client reads it.
		summary bool
	}{
		{"summary", file("summary"), true},
		{"summary.sig", file("summary.sig"), true},
		{"ref", file("refs/heads/" + attackRef), false},
		{"commitmeta", object(func(e *attackEnv) ostree.ObjectName {
			return ostree.ObjectName{Checksum: e.next.Commit, Type: ostree.ObjectCommitMeta}
		}), false},
		{"commit", object(commitOf), false},
		{"dirtree", object(treeOf("usr")), false},
		{"content", object(fileOf("usr/lib/libtool.so")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newAttackEnv(t, "archive", false)
			if tt.summary {
				e.src.Summary()
			}
			path, mention := tt.target(e)
			fault := pulltest.Endless(gib)
			if tt.name == "content" {
				fault = headerThenEndless(gib)
			}
			e.srv.Handle(pulltest.Path(path), fault)
			peak, base, err := peakHeap(func() error {
				_, err := pull.Pull(context.Background(), e.client, e.options())
				return err
			})
			if err == nil {
				t.Fatalf("Pull() with an endless %s = nil error, want an error", path)
			}
			t.Logf("Pull() failed as it must: %v", err)
			if !strings.Contains(err.Error(), mention) {
				t.Errorf("Pull() = %v, want it to name %s", err, mention)
			}
			if growth := peak - base; growth >= 64*uint64(mib) {
				t.Errorf("heap in use grew by %d MiB while the server sent an endless %s, want less than 64 MiB", growth>>20, path)
			} else {
				t.Logf("heap in use grew by %.1f MiB", float64(growth)/float64(mib))
			}
			var sent int64
			for _, r := range e.srv.Requests() {
				if r.Path == path {
					sent += r.Sent()
				}
			}
			if sent >= 256*mib {
				t.Errorf("the server sent %d MiB of the endless %s, want the client to stop reading well before", sent>>20, path)
			}
			checkAftermath(t, e, ostree.ObjectName{}, ostree.Checksum{})
		})
	}
}

// peakHeap runs fn while sampling runtime.MemStats.HeapInuse every 2ms and returns the
// highest sample and the value before fn started.
func peakHeap(fn func() error) (peak, base uint64, err error) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak = ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}()
	err = fn()
	close(done)
	wg.Wait()
	runtime.ReadMemStats(&ms)
	return max(peak, ms.HeapInuse), base, err
}
