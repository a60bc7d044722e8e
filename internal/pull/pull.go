package pull

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// DefaultParallel is the number of objects fetched at once by default.
// A pull is a long series of small requests, so on any link with latency
// the number in flight sets the speed: pulling the Debian benchmark corpus
// (18k objects) over a 20 ms round trip takes 71 s with 8, 27 s with 32,
// and no less with 64 (tools/bench, pull-serve-20ms).
const DefaultParallel = 32

// Verifier checks detached signatures: data is a commit object or a
// summary, detached the a{sv} that carries its signatures (.commitmeta or
// summary.sig, nil when the server has none). It returns a description
// of the trusted key that signed, or an error saying why there is none.
type Verifier interface {
	Verify(data, detached []byte) (key string, err error)
}

// Progress is told how many objects a pull has found so far (SetTotal,
// growing) and each one finished (Add), fetched or found locally. Its
// methods are called from several goroutines.
type Progress interface {
	SetTotal(n int64)
	Add(n int64)
}

// ByteProgress is a Progress that also wants the bytes received so far,
// told with each object finished.
type ByteProgress interface {
	Progress
	SetBytes(n int64)
}

// Options describe a pull.
type Options struct {
	// URL is the remote repository's base URL (http, https or file).
	URL string
	// Remote names the remote the refs belong to: pulled refs are written
	// as refs/remotes/REMOTE/REF. Empty means a pull by URL, which writes
	// refs/heads/REF as a mirror does.
	Remote string
	// Refs are the refs to pull, each "REF" (resolved through the remote's
	// summary, or refs/heads/REF when it has none) or "REF@CHECKSUM" (that
	// commit, no lookup, and an older commit than the local one is fine).
	Refs []string

	// Verifier checks commit signatures, and summary.sig when the server
	// has one. A pull without a Verifier is refused unless NoVerify.
	Verifier Verifier
	// NoVerify pulls without checking signatures.
	NoVerify bool
	// RequireSummarySignature refuses a summary without summary.sig
	// (sign-verify-summary).
	RequireSummarySignature bool
	// AllowDowngrade lets a ref move to a commit older than the one it
	// points to locally. Without it such a pull is refused: a stale or
	// replayed summary must not roll a system back.
	AllowDowngrade bool

	// CommitOnly fetches and verifies the commits only, like ostree pull
	// --commit-metadata-only: their trees are not fetched, the commits stay
	// marked partial, and no ref moves. Result.Refs tells the commit each
	// ref would move to (upgrade --check).
	CommitOnly bool

	// Depth is how many parents of each commit are pulled too, commit and
	// tree, like ostree pull --depth; -1 means all history. Parents are
	// verified like the commit itself (their ref binding excepted). A
	// parent the remote no longer has ends the history without error.
	Depth int

	// Client makes the requests; nil means NewClient(). Whatever the
	// client's own redirect policy, a pull follows a redirect only on the
	// same scheme (or from http up to https) and, unless
	// AllowCrossHostRedirects, to the same host; a refused redirect is
	// errdefs.ErrInvalid and not retried.
	Client *http.Client
	// AllowCrossHostRedirects lets the server redirect to other hosts
	// (the remote setting allow-cross-host-redirects).
	AllowCrossHostRedirects bool
	// Parallel bounds the objects fetched at once; 0 means DefaultParallel.
	Parallel int
	// Retry says how transient failures are retried.
	Retry RetryPolicy
	// RequestTimeout bounds each request, body included; 0 means 10
	// minutes. A content object whose declared size would take longer at
	// 256 KiB/s gets that long instead. StallTimeout fails a request that
	// receives nothing for that long (headers included); 0 means 30
	// seconds. Both count as transient failures and are retried.
	RequestTimeout, StallTimeout time.Duration
	// MaxContentSize bounds the payload a content object may declare;
	// 0 means DefaultMaxContentSize. When the commit lists the object in
	// its ostree.sizes, the size must be that one exactly.
	MaxContentSize int64
	// MaxInflateRatio bounds how many payload bytes a content object may
	// inflate to per compressed byte received (plus 1 MiB), when the
	// commit does not list its size; 0 means DefaultMaxInflateRatio, -1
	// no bound.
	MaxInflateRatio int64

	// DisableStaticDeltas pulls objects only. Otherwise a static delta the
	// remote offers (docs/formats/static-deltas.md) from the ref's current
	// commit, or from empty for a first pull, brings the objects, and a
	// missing or bad delta falls back to object pulls, unless
	// RequireStaticDeltas makes that an error.
	DisableStaticDeltas, RequireStaticDeltas bool
	// DeltaFrom is a commit stored here complete (a node's booted
	// commit) whose delta is used when the remote offers none from the
	// ref's current commit.
	DeltaFrom ostree.Checksum
	// DeltaStarted, if set, is told the name of each delta the pull uses
	// and the bytes it will download, before it downloads them.
	DeltaStarted func(name string, bytes uint64)
	// Superblocks, if set, keeps the delta superblocks DeltaSize fetched for the pull that
	// follows (and the other way round): each is fetched once, and checked against the
	// summary's digest on every use.
	Superblocks *SuperblockCache

	// Progress, if set, follows the objects.
	Progress Progress
	// Now is the clock for Result.Duration; nil means time.Now.
	Now func() time.Time
}

// RefResult is what a pull did to one ref.
type RefResult struct {
	Ref      string          `json:"ref"`
	Commit   ostree.Checksum `json:"-"`
	Previous ostree.Checksum `json:"-"` // zero if the ref did not exist
	// SignedBy is the key that signed the commit ("" with NoVerify).
	SignedBy string `json:"signed_by,omitempty"`
}

// Result summarizes a finished pull.
type Result struct {
	Refs []RefResult
	// Commits counts the commit objects verified (tips and parents).
	Commits int
	// Fetched and Skipped count tree and content objects downloaded and
	// found locally (in objects/ or staged by an interrupted pull).
	Fetched, Skipped int64
	// Deltas are the static deltas the pull used or tried.
	Deltas []DeltaResult
	// Bytes is the body bytes received, summary and commits included.
	Bytes    int64
	Duration time.Duration
}

// target is one requested ref and the commit it resolves to.
type target struct {
	ref      string
	commit   ostree.Checksum
	explicit bool   // REF@CHECKSUM
	noRef    bool   // a bare CHECKSUM: no ref to check or move
	size     uint64 // commit size from the summary, 0 if unknown
}

type puller struct {
	r              *repo.Repo
	opts           Options
	tr             *transport
	txn            *repo.Txn
	stats          stats
	maxContentSize int64
	maxRatio       int64
	partial        []ostree.Checksum // commitpartial markers written

	sizesMu sync.Mutex
	sizes   map[ostree.Checksum]uint64 // content sizes from verified commits' ostree.sizes

	summary       *ostree.Summary            // the remote's, nil if none was fetched
	deltas        map[string]ostree.Checksum // offered deltas, nil until first needed
	indexedDeltas bool

	// writers bounds the content objects being decoded and stored at
	// once (see fetchContent).
	writers chan struct{}
}

// DefaultMaxContentSize is the largest payload a content object may
// declare unless Options.MaxContentSize says otherwise: far above any file
// of an operating system tree, far below what fills a disk.
const DefaultMaxContentSize = 64 << 30

// DefaultMaxInflateRatio bounds the inflate ratio of content objects whose
// size the commit does not list. Deflate reaches about 1030:1 on zeros, so
// a .filez of zeros claiming a huge size would make the client write 1000
// bytes per byte received. Real files stay far below: of the 129,871 files
// under a Debian /usr (with a Go toolchain and OVMF), compressed at
// strata's level, the highest ratio is 215:1 (OVMF_VARS_4M.fd, 528 KiB),
// and every file above 100:1 is smaller than the 1 MiB any object may
// inflate to regardless.
const DefaultMaxInflateRatio = 400

// knownSize returns the size of content object c from the ostree.sizes
// of a verified commit of this pull.
func (p *puller) knownSize(c ostree.Checksum) (uint64, bool) {
	p.sizesMu.Lock()
	defer p.sizesMu.Unlock()
	n, ok := p.sizes[c]
	return n, ok
}

// learnSizes records the content sizes a verified commit lists.
func (p *puller) learnSizes(c ostree.Checksum, cm *ostree.Commit) error {
	sizes, err := contentSizes(cm.Metadata)
	if err != nil {
		return fmt.Errorf("commit %s: %w", c, err)
	}
	p.sizesMu.Lock()
	defer p.sizesMu.Unlock()
	if p.sizes == nil {
		p.sizes = map[ostree.Checksum]uint64{}
	}
	for k, v := range sizes {
		p.sizes[k] = v
	}
	return nil
}

// contentWriters is how many content objects a pull decodes and stores at
// once, out of the Options.Parallel being fetched. Decoding uses CPU, but
// storing also waits in the kernel (creating an inode can wait for the
// filesystem's journal), so four per core keep the cores busy where two
// left them idle at times (a bare-user pull of the Debian corpus on an
// idle 2-core machine: 7.06-7.38 s against 7.48-8.02 s). Each costs its
// buffers (and, in an archive repository, a deflater of several hundred
// KiB), so more only add memory.
func contentWriters() int { return max(8, 4*runtime.GOMAXPROCS(0)) }

// Pull fetches opts.Refs from opts.URL into r (docs/formats/summary.md): it reads the
// summary (verifying summary.sig when the server has one and a Verifier
// is set) or refs/heads/REF, then for each commit fetches its detached
// metadata and the commit, checks the checksum, the signature and the ref
// binding before anything else of it is fetched, marks it
// state/CSUM.commitpartial, fetches the missing objects of its tree and
// of Depth parents, and finally moves the refs in the transaction's commit
// point and removes the markers. Every object is verified before it is
// stored, and stored in r's own mode.
//
// On failure nothing is committed and no ref moves, but the verified
// objects stay staged: pulling again in the same boot resumes without
// fetching them again.
func Pull(ctx context.Context, r *repo.Repo, opts Options) (*Result, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	start := now()
	targets, err := parseRefs(opts.Refs)
	if err != nil {
		return nil, err
	}
	if opts.Remote != "" && (strings.ContainsAny(opts.Remote, "/:") || opts.Remote == "." || opts.Remote == "..") {
		return nil, fmt.Errorf("remote name %q: %w", opts.Remote, errdefs.ErrInvalid)
	}
	if opts.Verifier == nil && !opts.NoVerify {
		return nil, fmt.Errorf("no trusted key to verify signatures with (give one, or choose not to verify): %w", errdefs.ErrFailedPrecondition)
	}
	p, err := newPuller(r, opts)
	if err != nil {
		return nil, err
	}
	if err := p.resolve(ctx, targets); err != nil {
		return nil, err
	}
	res, err := p.run(ctx, targets)
	if err != nil {
		return nil, err
	}
	res.Bytes = p.tr.bytes.Load()
	res.Fetched, res.Skipped = p.stats.counts()
	res.Duration = now().Sub(start)
	return res, nil
}

// newPuller sets up the transport of a pull with opts' defaults.
func newPuller(r *repo.Repo, opts Options) (*puller, error) {
	if opts.NoVerify {
		opts.Verifier = nil
	}
	client := opts.Client
	if client == nil {
		client = NewClient()
	}
	timeout, stall := opts.RequestTimeout, opts.StallTimeout
	if timeout == 0 {
		timeout = 10 * time.Minute
	}
	if stall == 0 {
		stall = 30 * time.Second
	}
	tr, err := newTransport(client, opts.URL, opts.Retry, timeout, stall, opts.AllowCrossHostRedirects)
	if err != nil {
		return nil, err
	}
	p := &puller{r: r, opts: opts, tr: tr, maxContentSize: opts.MaxContentSize, writers: make(chan struct{}, contentWriters())}
	if p.maxContentSize <= 0 {
		p.maxContentSize = DefaultMaxContentSize
	}
	switch p.maxRatio = opts.MaxInflateRatio; {
	case p.maxRatio == 0:
		p.maxRatio = DefaultMaxInflateRatio
	case p.maxRatio < 0:
		p.maxRatio = 0
	}
	p.stats.progress = opts.Progress
	p.stats.bytes = tr.bytes.Load
	return p, nil
}

func parseRefs(refs []string) ([]*target, error) {
	if len(refs) == 0 {
		return nil, fmt.Errorf("no ref to pull: %w", errdefs.ErrInvalid)
	}
	var out []*target
	for _, s := range refs {
		name, sum, explicit := strings.Cut(s, "@")
		if !explicit && ostree.IsChecksum(name) {
			// A commit by checksum, as `ostree pull REMOTE CHECKSUM`:
			// fetched and verified, but no ref moves.
			c, _ := ostree.ParseChecksum(name)
			out = append(out, &target{ref: name, commit: c, explicit: true, noRef: true})
			continue
		}
		if err := ostree.ValidateRef(name); err != nil {
			return nil, err
		}
		t := &target{ref: name, explicit: explicit}
		if explicit {
			c, err := ostree.ParseChecksum(sum)
			if err != nil {
				return nil, fmt.Errorf("ref %q: %w", s, err)
			}
			t.commit = c
		}
		out = append(out, t)
	}
	return out, nil
}

// resolve finds the commit of every target without an explicit one: from
// the summary, or from refs/heads/REF when the remote publishes none.
func (p *puller) resolve(ctx context.Context, targets []*target) error {
	need := p.opts.RequireSummarySignature
	for _, t := range targets {
		need = need || !t.explicit
	}
	var sum *ostree.Summary
	if need {
		var err error
		if sum, err = p.fetchSummary(ctx); err != nil {
			return err
		}
	}
	p.summary = sum
	if sum == nil || sum.Metadata.String(ostree.SummaryMode) == "" {
		if err := p.checkRemoteConfig(ctx); err != nil {
			return err
		}
	}
	for _, t := range targets {
		if t.explicit {
			continue
		}
		if sum != nil {
			e, ok := sum.Lookup(t.ref)
			if !ok {
				return fmt.Errorf("remote %s has no ref %q: %w", p.opts.URL, t.ref, errdefs.ErrNotFound)
			}
			t.commit, t.size = e.Checksum, e.CommitSize
			continue
		}
		b, err := p.tr.get(ctx, "refs/heads/"+t.ref, 4096)
		if errors.Is(err, errdefs.ErrNotFound) {
			return fmt.Errorf("remote %s has no ref %q: %w", p.opts.URL, t.ref, errdefs.ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reading ref %s: %w", t.ref, err)
		}
		if t.commit, err = ostree.ParseChecksum(strings.TrimSpace(string(b))); err != nil {
			return fmt.Errorf("remote ref %s: %w: %w", t.ref, errdefs.ErrCorrupt, err)
		}
	}
	return nil
}

// maxSummarySize bounds summary downloads; libostree has no bound, but
// even remotes with thousands of refs stay far below it (a ref entry is
// about 100 bytes). It is also the memory a hostile endless summary can
// cost, so it stays well under the 64 MiB the attack tests allow.
const maxSummarySize = 32 << 20

// fetchSummary fetches summary.sig and summary (step 1 in docs/formats/summary.md) and
// verifies the signature when there is one and a Verifier. It returns nil
// when the remote has no summary.
func (p *puller) fetchSummary(ctx context.Context) (*ostree.Summary, error) {
	sig, err := p.tr.getOptional(ctx, repo.SummarySigFile, repo.MaxMetadataSize)
	if err != nil {
		return nil, fmt.Errorf("fetching summary signature: %w", err)
	}
	data, err := p.tr.getOptional(ctx, repo.SummaryFile, maxSummarySize)
	if err != nil {
		return nil, fmt.Errorf("fetching summary: %w", err)
	}
	if data == nil {
		if p.opts.RequireSummarySignature {
			return nil, fmt.Errorf("remote %s has no summary, and a signed one is required: %w", p.opts.URL, errdefs.ErrFailedPrecondition)
		}
		return nil, nil
	}
	switch {
	case sig == nil && p.opts.RequireSummarySignature && !p.opts.NoVerify:
		return nil, fmt.Errorf("remote %s has no summary.sig, and a signed summary is required: %w", p.opts.URL, errdefs.ErrFailedPrecondition)
	case sig != nil && p.opts.Verifier != nil:
		if _, err := p.opts.Verifier.Verify(data, sig); err != nil {
			return nil, fmt.Errorf("verifying the summary of %s: %w", p.opts.URL, err)
		}
	}
	s, err := ostree.ParseSummary(data)
	if err != nil {
		return nil, fmt.Errorf("remote %s: %w", p.opts.URL, err)
	}
	if mode := s.Metadata.String(ostree.SummaryMode); mode != "" {
		if err := checkRemoteMode(mode); err != nil {
			return nil, fmt.Errorf("remote %s: %w", p.opts.URL, err)
		}
	}
	return s, nil
}

// checkRemoteConfig reads the remote's config, when it publishes one, to
// refuse a non-archive repository as libostree does (docs/formats/repository.md).
func (p *puller) checkRemoteConfig(ctx context.Context) error {
	b, err := p.tr.getOptional(ctx, "config", 1<<20)
	if err != nil || b == nil {
		return err
	}
	cfg, err := keyfile.Parse(b)
	if err != nil {
		return fmt.Errorf("remote %s config: %w: %w", p.opts.URL, errdefs.ErrCorrupt, err)
	}
	mode, ok := cfg.Get("core", "mode")
	if !ok {
		mode = "bare"
	}
	if err := checkRemoteMode(mode); err != nil {
		return fmt.Errorf("remote %s: %w", p.opts.URL, err)
	}
	return nil
}

func checkRemoteMode(mode string) error {
	if m, err := repo.ParseMode(mode); err != nil || m != repo.ModeArchive {
		return fmt.Errorf("the repository is in %q mode, and only archive repositories can be pulled over HTTP: %w", mode, errdefs.ErrUnsupported)
	}
	return nil
}

// run fetches every target inside one transaction and commits it.
func (p *puller) run(ctx context.Context, targets []*target) (res *Result, err error) {
	txn, err := p.r.Begin()
	if err != nil {
		return nil, err
	}
	p.txn = txn
	defer func() {
		if err != nil {
			txn.Suspend()
		}
	}()
	res = &Result{}
	loose := newLooseFetcher(p, max(p.opts.Parallel, 0))
	if loose.workers == 0 {
		loose.workers = DefaultParallel
	}
	type verified struct {
		commit *ostree.Commit
		key    string
	}
	done := map[ostree.Checksum]verified{}
	for _, t := range targets {
		v, ok := done[t.commit]
		if !ok {
			c, key, err := p.commit(ctx, t.commit, t.size)
			if err != nil {
				return nil, err
			}
			res.Commits++
			v = verified{commit: c, key: key}
			done[t.commit] = v
		}
		prev, err := p.checkTarget(t, v.commit)
		if err != nil {
			return nil, err
		}
		if p.opts.CommitOnly {
			if err := p.markCommitOnly(t.commit); err != nil {
				return nil, err
			}
			res.Refs = append(res.Refs, RefResult{Ref: t.ref, Commit: t.commit, Previous: prev, SignedBy: v.key})
			continue
		}
		if !ok {
			if err := p.tryDelta(ctx, t.commit, prev, res); err != nil {
				return nil, err
			}
			if err := p.pullTrees(ctx, loose, t.commit, v.commit, res); err != nil {
				return nil, err
			}
		}
		if t.noRef {
			continue
		}
		if err := txn.SetRef(p.opts.Remote, t.ref, t.commit); err != nil {
			return nil, err
		}
		res.Refs = append(res.Refs, RefResult{Ref: t.ref, Commit: t.commit, Previous: prev, SignedBy: v.key})
	}
	if err := txn.Commit(); err != nil {
		return nil, fmt.Errorf("committing pulled objects: %w", err)
	}
	if p.opts.CommitOnly {
		return res, nil // the commits stay partial: their trees are missing
	}
	// The objects are durable now; a marker that outlives a crash here
	// only makes the next pull walk the tree again.
	for _, c := range p.partial {
		if err := os.Remove(partialPath(p.r, c)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("removing commitpartial marker of %s: %w", c, err)
		}
	}
	return res, nil
}

// checkTarget checks that a verified commit may become the ref's new
// value: its ref binding, and no downgrade of an existing local ref unless
// the commit was asked for explicitly or AllowDowngrade. It returns the
// ref's current value (zero if none).
func (p *puller) checkTarget(t *target, c *ostree.Commit) (ostree.Checksum, error) {
	if t.noRef {
		return ostree.Checksum{}, nil
	}
	if err := checkBinding(c, t.ref); err != nil {
		return ostree.Checksum{}, fmt.Errorf("commit %s: %w", t.commit, err)
	}
	prev, err := p.r.ReadRef(p.opts.Remote, t.ref)
	if errors.Is(err, errdefs.ErrNotFound) {
		return ostree.Checksum{}, nil
	}
	if err != nil {
		return prev, err
	}
	if t.explicit || p.opts.AllowDowngrade || prev == t.commit {
		return prev, nil
	}
	if old, err := p.r.ReadCommit(prev); err == nil && old.Timestamp > c.Timestamp {
		return prev, fmt.Errorf("ref %s: commit %s (%s) is older than the local %s (%s): %w",
			t.ref, t.commit, c.Time().Format(time.RFC3339), prev, old.Time().Format(time.RFC3339), ErrDowngrade)
	}
	return prev, nil
}

// pullTrees brings in the tree of a verified commit and the commits and
// trees of Depth parents.
func (p *puller) pullTrees(ctx context.Context, f fetcher, sum ostree.Checksum, c *ostree.Commit, res *Result) error {
	if err := p.tree(ctx, f, sum, c); err != nil {
		return err
	}
	parent := c.Parent
	for depth := 0; (p.opts.Depth < 0 || depth < p.opts.Depth) && !parent.IsZero(); depth++ {
		pc, _, err := p.commit(ctx, parent, 0)
		if errors.Is(err, errdefs.ErrNotFound) {
			break // history pruned on the remote
		}
		if err != nil {
			return fmt.Errorf("parent %d of %s: %w", depth+1, sum, err)
		}
		res.Commits++
		if err := p.tree(ctx, f, parent, pc); err != nil {
			return err
		}
		parent = pc.Parent
	}
	return nil
}

// markCommitOnly marks a commit fetched without its tree as partial,
// unless it was already stored complete.
func (p *puller) markCommitOnly(c ostree.Checksum) error {
	stored, err := p.r.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
	if err != nil || stored {
		return err
	}
	return markPartial(p.r, c)
}

// tree fetches a verified commit's tree unless it is complete locally.
func (p *puller) tree(ctx context.Context, f fetcher, c ostree.Checksum, cm *ostree.Commit) error {
	n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}
	stored, err := p.r.HasObject(n)
	if err != nil {
		return err
	}
	if _, err := os.Lstat(partialPath(p.r, c)); stored && errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := p.learnSizes(c, cm); err != nil {
		return err
	}
	if err := markPartial(p.r, c); err != nil {
		return err
	}
	p.partial = append(p.partial, c)
	if err := f.fetchTree(ctx, p.txn, cm.RootTree, cm.RootMeta); err != nil {
		return fmt.Errorf("pulling the tree of commit %s: %w", c, err)
	}
	return nil
}

// checkBinding enforces ostree.ref-binding (docs/formats/signatures.md): a commit that
// lists the refs it may be pulled as must list this one.
func checkBinding(c *ostree.Commit, ref string) error {
	if _, ok := c.Metadata.Get(ostree.MetaRefBinding); !ok {
		return nil
	}
	bound := c.Metadata.Strings(ostree.MetaRefBinding)
	for _, b := range bound {
		if b == ref {
			return nil
		}
	}
	return fmt.Errorf("it is bound to refs %q, not to %q (ostree.ref-binding): %w", bound, ref, errdefs.ErrFailedPrecondition)
}

func partialPath(r *repo.Repo, c ostree.Checksum) string {
	return filepath.Join(r.Path(), "state", c.String()+".commitpartial")
}

// markPartial writes state/CSUM.commitpartial, libostree's marker of a
// commit whose tree is not complete (docs/formats/repository.md).
func markPartial(r *repo.Repo, c ostree.Checksum) error {
	if err := os.MkdirAll(filepath.Join(r.Path(), "state"), 0o755); err != nil {
		return fmt.Errorf("marking commit %s partial: %w", c, err)
	}
	if err := fsutil.WriteFileAtomic(partialPath(r, c), nil, 0o644); err != nil {
		return fmt.Errorf("marking commit %s partial: %w", c, err)
	}
	return nil
}

// stats counts objects for the Result and the Progress.
type stats struct {
	progress Progress
	bytes    func() int64
	mu       sync.Mutex
	total    int64
	fetch    int64
	skip     int64
}

func (s *stats) discovered(n int64) {
	s.mu.Lock()
	s.total += n
	t := s.total
	s.mu.Unlock()
	if s.progress != nil {
		s.progress.SetTotal(t)
	}
}

func (s *stats) fetched() { s.done(&s.fetch) }
func (s *stats) skipped() { s.done(&s.skip) }

func (s *stats) done(c *int64) {
	s.mu.Lock()
	*c++
	s.mu.Unlock()
	if s.progress != nil {
		s.progress.Add(1)
		if bp, ok := s.progress.(ByteProgress); ok {
			bp.SetBytes(s.bytes())
		}
	}
}

func (s *stats) counts() (fetched, skipped int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.fetch, s.skip
}
