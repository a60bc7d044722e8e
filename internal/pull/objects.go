package pull

import (
	"context"
	"fmt"
	"sync"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// fetcher brings every object of a commit's tree into the transaction.
// Pull asks one for each commit whose tree is not complete locally, after
// the commit itself is verified and stored. The loose-object walker is
// the only one today; a static-delta fetcher (not implemented yet) would apply the
// delta parts and then hand the tree to the walker, which fetches only
// what the delta did not bring.
type fetcher interface {
	fetchTree(ctx context.Context, txn *repo.Txn, tree, meta ostree.Checksum) error
}

var _ fetcher = (*looseFetcher)(nil)

// Strict types of pulled metadata: a fetched object must be in normal
// form, as libostree writes it, before it is parsed or stored.
var (
	dirTreeType = gvariant.MustType("(a(say)a(sayay))")
	dirMetaType = gvariant.MustType("(uuua(ayay))")
	commitType  = gvariant.MustType("(a{sv}aya(say)sstayay)")
)

func normalType(typ ostree.ObjectType) *gvariant.Type {
	switch typ {
	case ostree.ObjectDirTree:
		return dirTreeType
	case ostree.ObjectDirMeta:
		return dirMetaType
	case ostree.ObjectCommit:
		return commitType
	}
	return nil
}

// checkMetadata verifies that data is the metadata object n: its sha256
// is the name and it is a normal-form GVariant of the type.
func checkMetadata(n ostree.ObjectName, data []byte) error {
	if got := ostree.MetadataChecksum(data); got != n.Checksum {
		return fmt.Errorf("object %s: content hashes to %s: %w", n, got, errdefs.ErrCorrupt)
	}
	if t := normalType(n.Type); t != nil && !gvariant.IsNormal(t, data) {
		return fmt.Errorf("object %s: not a normal-form %s: %w", n, t, errdefs.ErrCorrupt)
	}
	return nil
}

// looseFetcher walks a tree breadth-first over loose objects with a fixed
// number of workers: dirtrees are fetched (or read locally) and parsed to
// find more work, dirmeta and content objects are fetched when missing.
// Metadata goes before content so that the total is known early, but on
// at most half the workers while content is waiting: fetching metadata
// waits on the server (cold reads of small files) and costs this side
// little CPU, while content is decoded and stored here, so doing both at
// once keeps both sides busy. Objects seen once in a pull are not looked
// at again.
type looseFetcher struct {
	p       *puller
	workers int

	mu      sync.Mutex
	seen    map[ostree.ObjectName]bool
	queue   []ostree.ObjectName // dirtree and dirmeta
	content []ostree.ObjectName
	pending int // queued or being processed
	meta    int // metadata objects being processed
	err     error
	wake    *sync.Cond
}

func newLooseFetcher(p *puller, workers int) *looseFetcher {
	f := &looseFetcher{p: p, workers: workers, seen: map[ostree.ObjectName]bool{}}
	f.wake = sync.NewCond(&f.mu)
	return f
}

func (f *looseFetcher) fetchTree(ctx context.Context, txn *repo.Txn, tree, meta ostree.Checksum) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	f.mu.Lock()
	f.err = nil
	f.mu.Unlock()
	f.add(ostree.ObjectName{Checksum: tree, Type: ostree.ObjectDirTree})
	f.add(ostree.ObjectName{Checksum: meta, Type: ostree.ObjectDirMeta})
	var wg sync.WaitGroup
	for range f.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.work(ctx, cancel, txn)
		}()
	}
	wg.Wait()
	return f.err
}

// add queues an object unless it was seen before in this pull.
func (f *looseFetcher) add(n ostree.ObjectName) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.seen[n] {
		return
	}
	f.seen[n] = true
	f.pending++
	if n.Type == ostree.ObjectFile {
		f.content = append(f.content, n)
	} else {
		f.queue = append(f.queue, n)
	}
	f.p.stats.discovered(1)
	f.wake.Signal()
}

func (f *looseFetcher) work(ctx context.Context, cancel context.CancelFunc, txn *repo.Txn) {
	for {
		f.mu.Lock()
		for len(f.queue) == 0 && len(f.content) == 0 && f.pending > 0 && f.err == nil {
			f.wake.Wait()
		}
		if f.err != nil || f.pending == 0 {
			f.mu.Unlock()
			return
		}
		var n ostree.ObjectName
		if len(f.queue) > 0 && (f.meta < max(1, f.workers/2) || len(f.content) == 0) {
			n, f.queue = f.queue[0], f.queue[1:]
			f.meta++
		} else {
			n, f.content = f.content[len(f.content)-1], f.content[:len(f.content)-1]
		}
		f.mu.Unlock()

		err := f.process(ctx, txn, n)

		f.mu.Lock()
		f.pending--
		if n.Type != ostree.ObjectFile {
			f.meta--
		}
		if err != nil && f.err == nil {
			f.err = err
			f.queue, f.content = nil, nil
			cancel()
		}
		if f.pending == 0 || f.err != nil {
			f.wake.Broadcast()
		}
		f.mu.Unlock()
	}
}

// process makes one object present in txn and queues what it refers to.
func (f *looseFetcher) process(ctx context.Context, txn *repo.Txn, n ostree.ObjectName) error {
	have, err := txn.HasObject(n)
	if err != nil {
		return err
	}
	switch {
	case n.Type == ostree.ObjectFile && have:
		f.p.stats.skipped()
		return nil
	case n.Type == ostree.ObjectFile:
		if err := f.p.fetchContent(ctx, txn, n.Checksum); err != nil {
			return fmt.Errorf("fetching %s: %w", n, err)
		}
		f.p.stats.fetched()
		return nil
	case n.Type == ostree.ObjectDirMeta && have:
		f.p.stats.skipped()
		return nil
	}
	data, err := f.p.metadata(ctx, txn, n, have, 0)
	if err != nil {
		return err
	}
	switch n.Type {
	case ostree.ObjectDirMeta:
		if _, err := ostree.ParseDirMeta(data); err != nil {
			return fmt.Errorf("object %s: %w", n, err)
		}
	case ostree.ObjectDirTree:
		t, err := ostree.ParseDirTree(data)
		if err != nil {
			return fmt.Errorf("object %s: %w", n, err)
		}
		for _, d := range t.Dirs {
			f.add(ostree.ObjectName{Checksum: d.Meta, Type: ostree.ObjectDirMeta})
			f.add(ostree.ObjectName{Checksum: d.Tree, Type: ostree.ObjectDirTree})
		}
		for _, fl := range t.Files {
			f.add(ostree.ObjectName{Checksum: fl.Checksum, Type: ostree.ObjectFile})
		}
	}
	if !have {
		if err := txn.WriteMetadataExpect(n.Type, n.Checksum, data); err != nil {
			return err
		}
	}
	return nil
}
