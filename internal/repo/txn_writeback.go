package repo

import (
	"fmt"
	"sync"

	"golang.org/x/sys/unix"
)

// writebackEvery is how many bytes a transaction stages between the syncs
// it starts in the background (see writeback). A variable for tests.
var writebackEvery int64 = 64 << 20

// syncfs is unix.Syncfs, a variable for tests.
var syncfs = unix.Syncfs

// writeback starts the writing of staged objects to disk while a
// transaction is still staging more, so that the syncfs of its commit
// point finds little left to write. The kernel would otherwise start only
// after 30 s or at a tenth of memory dirty: a pull of a 600 MB tree ended
// with nothing but that syncfs, 0.5-1.2 s of disk writing with the CPUs
// idle. Every writebackEvery bytes staged, one syncfs runs in its own
// goroutine (at most one at a time), on the staging directory's
// descriptor, opened when the transaction began. Nothing about
// durability changes: these syncs come in addition to the commit point's,
// which still runs before any object becomes visible. A write-back error
// one of them reports is kept and returned by the commit point.
type writeback struct {
	mu      sync.Mutex
	pending int64 // bytes staged since the last sync started
	running bool
	stopped bool // the transaction is ending: no new sync starts
	err     error
	wg      sync.WaitGroup
}

// stagedBytes counts n bytes staged and starts a background sync when
// enough have gathered.
func (t *Txn) stagedBytes(n int64) {
	if !t.r.fsync {
		return
	}
	w := &t.wb
	w.mu.Lock()
	w.pending += n
	start := w.pending >= writebackEvery && !w.running && !w.stopped
	fd := -1
	if start {
		w.pending, w.running = 0, true
		w.wg.Add(1)
		fd = t.dirFD // open until stopWriteback has returned
	}
	w.mu.Unlock()
	if !start {
		return
	}
	go func() {
		defer w.wg.Done()
		err := syncfs(fd)
		w.mu.Lock()
		w.running = false
		if err != nil && w.err == nil {
			w.err = fmt.Errorf("syncfs %s: %w", t.dir, err)
		}
		w.mu.Unlock()
	}()
}

// stopWriteback lets no new background sync start, waits for the one
// running and returns the first error one reported.
func (t *Txn) stopWriteback() error {
	t.wb.mu.Lock()
	t.wb.stopped = true
	t.wb.mu.Unlock()
	return t.wb.wait()
}

// wait waits for the background sync running, if any, and returns the
// first error one reported.
func (w *writeback) wait() error {
	w.wg.Wait()
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.err
}
