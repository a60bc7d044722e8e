package delta

import (
	"io"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// sourceWindow is how many read sources the prefetcher asks for ahead of the program.
const sourceWindow = 64

// prefetcher asks the kernel to read ahead the local objects a part's program will use
// as read sources (set-read-source), up to sourceWindow of them ahead of the program.
// The program reads each source whole when it gets to it; on a cold page cache it did
// so one at a time, in the program's order, so a pull's wall time was mostly the disk
// answering one small read after another (a kernel update's delta: 4,000 modules, 3.9 s
// of 9 s spent in those reads). Asking for them ahead keeps the disk's queue full while
// the program runs.
//
// It reads only the program and the part's raw bytes, never trusts what it finds (a
// source that is not there, or a program it cannot follow, just ends the prefetching:
// the program itself reports errors), and changes nothing but the page cache.
type prefetcher struct {
	slots chan struct{}
	done  chan struct{}
	ended chan struct{}
	ask   func(path string) // readAhead; tests record instead
}

// startPrefetch starts reading ahead the sources of p's program in a goroutine.
func startPrefetch(r *repo.Repo, p *payload, objs []ostree.ObjectName) *prefetcher {
	pf := newPrefetcher(readAhead)
	go func() {
		defer close(pf.ended)
		pf.run(r, p, objs)
	}()
	return pf
}

func newPrefetcher(ask func(string)) *prefetcher {
	return &prefetcher{slots: make(chan struct{}, sourceWindow), done: make(chan struct{}), ended: make(chan struct{}), ask: ask}
}

// consumed tells the prefetcher that the program read one more source.
func (pf *prefetcher) consumed() {
	select {
	case <-pf.slots:
	default:
	}
}

// stop ends the prefetching and waits for it.
func (pf *prefetcher) stop() {
	close(pf.done)
	<-pf.ended
}

func (pf *prefetcher) run(r *repo.Repo, p *payload, objs []ostree.ObjectName) {
	ops, next := p.ops, 0
	var sum [32]byte
	for len(ops) > 0 {
		op := ops[0]
		ops = ops[1:]
		var n int
		switch op {
		case opOpenSpliceAndClose:
			if next >= len(objs) {
				return
			}
			n = 4
			if objs[next].Type != ostree.ObjectFile {
				n = 2
			}
			next++
		case opOpen:
			n = 3
		case opWrite, opBspatch:
			n = 2
		case opSetReadSource:
			n = 1
		case opUnsetReadSource:
		case opClose:
			next++
		default:
			return
		}
		var off uint64
		for range n {
			x, k, err := readVarint(ops)
			if err != nil {
				return
			}
			off, ops = x, ops[k:]
		}
		if op != opSetReadSource {
			continue
		}
		if off > uint64(p.rawLen) || uint64(p.rawLen)-off < 32 {
			return
		}
		if _, err := p.raw.ReadAt(sum[:], int64(off)); err != nil && err != io.EOF {
			return
		}
		select {
		case pf.slots <- struct{}{}:
		case <-pf.done:
			return
		}
		pf.ask(r.ObjectPath(ostree.ObjectName{Checksum: ostree.Checksum(sum), Type: ostree.ObjectFile}))
	}
}

// readAhead asks the kernel to read the file at path into the page cache, without
// waiting for it. Errors do not matter: the program reads the file itself.
func readAhead(path string) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	_ = unix.Fadvise(fd, 0, 0, unix.FADV_WILLNEED)
	unix.Close(fd)
}
