package pull

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/strata-os/strata/internal/delta"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// DeltaResult says what a pull did with the static delta to one commit.
type DeltaResult struct {
	Name string `json:"name"`
	// Bytes is what the superblock said the delta would download (parts
	// and fallback objects).
	Bytes uint64 `json:"bytes"`
	// Fallback is why the delta was abandoned for object pulls; "" when
	// it was applied.
	Fallback string `json:"fallback,omitempty"`
}

// deltaOffers returns the summary's ostree.static-deltas map (delta name to
// superblock sha256) and whether the remote publishes per-commit indexes.
func deltaOffers(sum *ostree.Summary) (map[string]ostree.Checksum, bool) {
	out := map[string]ostree.Checksum{}
	if sum == nil {
		return out, false
	}
	if v, ok := sum.Metadata.Get(ostree.SummaryStaticDeltas); ok {
		entries, _ := v.Value.([]gvariant.DictEntry)
		for _, e := range entries {
			k, _ := e.Key.(string)
			d, _ := e.Value.(gvariant.Variant)
			b, _ := d.Value.([]byte)
			if c, err := ostree.ChecksumFromBytes(b); err == nil {
				out[k] = c
			}
		}
	}
	v, ok := sum.Metadata.Get(ostree.SummaryIndexedDeltas)
	indexed, _ := v.Value.(bool)
	return out, ok && indexed
}

// deltaIndex fetches the delta index of commit to (delta-indexes/) and
// adds its entries to offers; a missing index adds nothing.
func (p *puller) deltaIndex(ctx context.Context, to ostree.Checksum, offers map[string]ostree.Checksum) error {
	b, err := p.tr.getOptional(ctx, delta.IndexPath(to), 1<<20)
	if err != nil || b == nil {
		return err
	}
	m, err := ostree.ParseMetadata(b)
	if err != nil {
		return fmt.Errorf("delta index of %s: %w: %w", to, errdefs.ErrCorrupt, err)
	}
	idx := &ostree.Summary{Metadata: m}
	found, _ := deltaOffers(idx)
	for k, v := range found {
		if _, ok := offers[k]; !ok {
			offers[k] = v
		}
	}
	return nil
}

// completeLocally reports whether commit c is stored with its whole tree
// (no commitpartial marker): a delta from it may read it.
func (p *puller) completeLocally(c ostree.Checksum) bool {
	ok, err := p.r.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
	if err != nil || !ok {
		return false
	}
	_, err = os.Lstat(partialPath(p.r, c))
	return errors.Is(err, os.ErrNotExist)
}

// tryDelta brings commit to's objects through a static delta when the
// remote offers one from prev (a commit stored complete here) or, for a
// first pull, from empty. It runs after the commit was verified and before
// its tree is walked: the walk then finds the delta's objects staged,
// fetches the fallback objects, and fetches loose whatever a bad delta did
// not produce. It returns nil, having recorded why, when the pull should go
// on with objects, and an error only when deltas are required.
func (p *puller) tryDelta(ctx context.Context, to, prev ostree.Checksum, res *Result) error {
	if p.opts.DisableStaticDeltas || p.completeLocally(to) {
		return nil
	}
	var name delta.Name
	var digest ostree.Checksum
	found := false
	if p.deltas == nil {
		if p.summary == nil { // every target was REF@CHECKSUM
			sum, err := p.fetchSummary(ctx)
			if err != nil {
				return err
			}
			p.summary = sum
		}
		p.deltas, p.indexedDeltas = deltaOffers(p.summary)
	}
	if p.indexedDeltas {
		if err := p.deltaIndex(ctx, to, p.deltas); err != nil && p.opts.RequireStaticDeltas {
			return err
		}
	}
	if !prev.IsZero() && prev != to && p.completeLocally(prev) {
		name = delta.Name{From: prev, To: to}
		digest, found = p.deltas[name.String()]
	}
	if from := p.opts.DeltaFrom; !found && !from.IsZero() && from != prev && from != to && p.completeLocally(from) {
		name = delta.Name{From: from, To: to}
		digest, found = p.deltas[name.String()]
	}
	if !found && prev.IsZero() {
		name = delta.Name{To: to}
		digest, found = p.deltas[name.String()]
	}
	if !found {
		if p.opts.RequireStaticDeltas {
			return fmt.Errorf("no static delta to commit %s from %s: %w", to, fromLabel(prev), errdefs.ErrNotFound)
		}
		return nil
	}
	dr := DeltaResult{Name: name.String()}
	err := p.applyDelta(ctx, name, digest, &dr)
	if err != nil {
		if p.opts.RequireStaticDeltas || ctx.Err() != nil {
			return err
		}
		dr.Fallback = err.Error()
	}
	res.Deltas = append(res.Deltas, dr)
	return nil
}

func fromLabel(c ostree.Checksum) string {
	if c.IsZero() {
		return "empty"
	}
	return c.String()
}

// applyDelta fetches a superblock, checks it against the digest the summary
// gave and the delta it should be, and applies the parts into the
// transaction.
func (p *puller) applyDelta(ctx context.Context, name delta.Name, digest ostree.Checksum, dr *DeltaResult) error {
	sb, _, err := p.fetchSuperblock(ctx, name, digest)
	if err != nil {
		return err
	}
	dr.Bytes = sb.DownloadSize()
	if p.opts.DeltaStarted != nil {
		p.opts.DeltaStarted(name.String(), dr.Bytes)
	}
	// A part streams into package delta's spool as it arrives; only
	// opening it is retried (a part that breaks off fails the delta, and
	// the pull falls back to objects).
	parts := func(ctx context.Context, i int, size int64) (io.ReadCloser, error) {
		var b *body
		err := p.tr.withRetry(ctx, func(ctx context.Context) error {
			var err error
			if b, err = p.tr.open(ctx, name.PartPath(i)); err != nil {
				return err
			}
			if b.length > size {
				b.Close()
				return fmt.Errorf("GET %s: %d bytes, more than the %d its header says: %w", b.url, b.length, size, errdefs.ErrCorrupt)
			}
			b.extendTimeout(time.Duration(size) * time.Second / minContentRate)
			return nil
		})
		return b, err
	}
	return delta.Apply(ctx, p.txn, sb, parts)
}

// fetchSuperblock fetches a delta's superblock and checks it against the
// digest the summary gave and the delta it should be; it returns the
// superblock and its size.
func (p *puller) fetchSuperblock(ctx context.Context, name delta.Name, digest ostree.Checksum) (*delta.Superblock, int, error) {
	b := p.opts.Superblocks.get(digest)
	if b == nil {
		var err error
		if b, err = p.tr.get(ctx, name.SuperblockPath(), delta.MaxSuperblockSize); err != nil {
			return nil, 0, fmt.Errorf("delta %s: fetching superblock: %w", name, err)
		}
	}
	if got := ostree.Checksum(sha256.Sum256(b)); got != digest {
		return nil, 0, fmt.Errorf("delta %s: superblock hashes to %s, the summary says %s: %w", name, got, digest, errdefs.ErrCorrupt)
	}
	sb, err := delta.ParseSuperblock(b)
	if err != nil {
		return nil, 0, fmt.Errorf("delta %s: %w", name, err)
	}
	if sb.Name != name {
		return nil, 0, fmt.Errorf("delta %s: superblock is of delta %s: %w", name, sb.Name, errdefs.ErrCorrupt)
	}
	p.opts.Superblocks.put(digest, b)
	return sb, len(b), nil
}

// SuperblockCache holds the last few delta superblocks a pull or DeltaSize fetched, by
// their SHA-256 (the digest a summary gives for them), so that sizing a delta and then
// pulling it fetch the superblock once. The zero value is ready; nil keeps nothing.
type SuperblockCache struct {
	mu     sync.Mutex
	byHash map[ostree.Checksum][]byte
	order  []ostree.Checksum
}

// superblockCacheLen bounds the cache: an update sizes and pulls one delta.
const superblockCacheLen = 4

func (c *SuperblockCache) get(digest ostree.Checksum) []byte {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byHash[digest]
}

func (c *SuperblockCache) put(digest ostree.Checksum, b []byte) {
	if c == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.byHash[digest]; ok {
		return
	}
	if c.byHash == nil {
		c.byHash = map[ostree.Checksum][]byte{}
	}
	if len(c.order) == superblockCacheLen {
		delete(c.byHash, c.order[0])
		c.order = c.order[1:]
	}
	c.byHash[digest] = b
	c.order = append(c.order, digest)
}

// DeltaSize returns the bytes that a pull of commit to through the static
// delta the remote of opts offers from commit from will download (the
// superblock, the parts that are not inline and the fallback objects),
// reading only the summary, the delta index and the superblock. A remote
// that offers no such delta is errdefs.ErrNotFound.
func DeltaSize(ctx context.Context, r *repo.Repo, opts Options, from, to ostree.Checksum) (int64, error) {
	if opts.NoVerify {
		opts.Verifier = nil
	}
	p, err := newPuller(r, opts)
	if err != nil {
		return 0, err
	}
	sum, err := p.fetchSummary(ctx)
	if err != nil {
		return 0, err
	}
	offers, indexed := deltaOffers(sum)
	if indexed {
		if err := p.deltaIndex(ctx, to, offers); err != nil {
			return 0, err
		}
	}
	name := delta.Name{From: from, To: to}
	digest, ok := offers[name.String()]
	if !ok {
		return 0, fmt.Errorf("static delta %s: %w", name, errdefs.ErrNotFound)
	}
	sb, n, err := p.fetchSuperblock(ctx, name, digest)
	if err != nil {
		return 0, err
	}
	return int64(n) + int64(sb.DownloadSize()), nil
}
