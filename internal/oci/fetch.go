package oci

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/strata-os/strata/internal/errdefs"
)

// blobRetries is how many times a blob download resumes after a dropped connection or a
// server error before the pull gives up.
const blobRetries = 5

// retryDelay is the wait before the first resumption; it doubles with each.
const retryDelay = 50 * time.Millisecond

// blobDir is where a repository keeps the layer blobs of a pull in progress, under its tmp/:
// a blob cut off by a dropped connection or an interrupted pull is resumed from there with a
// Range request instead of being downloaded again.
const blobDir = "oci-blobs"

// blobFetcher downloads the layer blobs of one registry repository into files, several at
// a time, each checked against its digest before anything reads it.
type blobFetcher struct {
	client *http.Client
	urls   []string // scheme://HOST/v2/NAME/blobs/, https first
	dir    string
	jobs   int

	mu       sync.Mutex
	progress Progress
	fetched  int64 // bytes downloaded
}

func newBlobFetcher(ctx context.Context, ref name.Reference, ro RegistryOptions, dir string) (*blobFetcher, error) {
	opts, err := ro.transport()
	if err != nil {
		return nil, err
	}
	kc := ro.Keychain
	if kc == nil {
		kc = authn.DefaultKeychain
	}
	repo := ref.Context()
	auth, err := authn.Resolve(ctx, kc, repo)
	if err != nil {
		return nil, fmt.Errorf("finding credentials for %s: %w", repo, err)
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, opts, []string{repo.Scope(transport.PullScope)})
	if err != nil {
		return nil, fmt.Errorf("authenticating to %s: %w", repo.Registry, classify(err))
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	path := "/v2/" + repo.RepositoryStr() + "/blobs/"
	urls := []string{"https://" + repo.RegistryStr() + path}
	if ro.Insecure {
		urls = append(urls, "http://"+repo.RegistryStr()+path)
	}
	jobs := ro.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	return &blobFetcher{client: &http.Client{Transport: rt}, urls: urls, dir: dir, jobs: jobs}, nil
}

func (f *blobFetcher) add(n int64) {
	f.mu.Lock()
	f.fetched += n
	if f.progress != nil {
		f.progress.Add(n)
	}
	f.mu.Unlock()
}

// path is where blob d is kept once verified.
func (f *blobFetcher) path(d v1.Hash) string { return filepath.Join(f.dir, d.Algorithm+"-"+d.Hex) }

// fetch downloads blob d of the given size into its file and returns the file's path. The
// download continues a partial file left by an earlier attempt (a Range request from its
// end), resumes the same way after a dropped connection or a 5xx answer (blobRetries
// times), and never reads more than size bytes. The finished file must hash to d.
func (f *blobFetcher) fetch(ctx context.Context, d v1.Hash, size int64) (string, error) {
	final := f.path(d)
	if _, err := os.Stat(final); err == nil {
		return final, nil
	}
	part := final + ".partial"
	file, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", fmt.Errorf("opening %s: %w", part, err)
	}
	defer file.Close()
	h := sha256.New()
	off, err := io.Copy(h, file)
	if err != nil {
		return "", fmt.Errorf("reading %s: %w", part, err)
	}
	if off > size {
		if off, err = restart(file, h); err != nil {
			return "", err
		}
	}
	var last error
	for attempt := 0; off < size && attempt <= blobRetries; attempt++ {
		if attempt > 0 {
			// Back off before resuming: 50 ms, doubling.
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(retryDelay << (attempt - 1)):
			}
		}
		if err := ctx.Err(); err != nil {
			return "", err
		}
		var n int64
		n, last = f.get(ctx, file, h, d, off, size)
		off += n
		if last != nil && !errors.Is(last, errdefs.ErrUnavailable) {
			return "", fmt.Errorf("fetching blob %s: %w", d, last)
		}
		if n == 0 && last == errRangeIgnored {
			if off, err = restart(file, h); err != nil {
				return "", err
			}
		}
	}
	if off < size {
		return "", fmt.Errorf("fetching blob %s: %d of %d bytes after %d attempts: %w", d, off, size, blobRetries+1, last)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != d.Hex {
		os.Remove(part)
		return "", fmt.Errorf("blob is sha256:%s, not its digest %s: %w", got, d, errdefs.ErrInvalid)
	}
	if err := file.Sync(); err != nil {
		return "", fmt.Errorf("writing %s: %w", part, err)
	}
	if err := os.Rename(part, final); err != nil {
		return "", fmt.Errorf("renaming %s: %w", part, err)
	}
	return final, nil
}

// errRangeIgnored: the server answered a Range request with the whole blob; the download
// starts over.
var errRangeIgnored = fmt.Errorf("the server ignored a Range request: %w", errdefs.ErrUnavailable)

func restart(file *os.File, h interface{ Reset() }) (int64, error) {
	h.Reset()
	if err := file.Truncate(0); err != nil {
		return 0, fmt.Errorf("truncating %s: %w", file.Name(), err)
	}
	if _, err := file.Seek(0, io.SeekStart); err != nil {
		return 0, fmt.Errorf("truncating %s: %w", file.Name(), err)
	}
	return 0, nil
}

// get requests bytes [off, size) of blob d and appends what arrives to file and h. An error
// that a retry may cure (a dropped connection, a 5xx) is ErrUnavailable.
func (f *blobFetcher) get(ctx context.Context, file io.Writer, h io.Writer, d v1.Hash, off, size int64) (int64, error) {
	var resp *http.Response
	var err error
	for _, u := range f.urls {
		req, rerr := http.NewRequestWithContext(ctx, http.MethodGet, u+d.String(), nil)
		if rerr != nil {
			return 0, rerr
		}
		if off > 0 {
			req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(size-1, 10))
		}
		if resp, err = f.client.Do(req); err == nil {
			break
		}
	}
	if err != nil {
		return 0, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK && off > 0:
		return 0, errRangeIgnored
	case resp.StatusCode == http.StatusOK, resp.StatusCode == http.StatusPartialContent:
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		return 0, fmt.Errorf("registry answered %s: %w", resp.Status, errdefs.ErrUnavailable)
	case resp.StatusCode == http.StatusNotFound:
		return 0, fmt.Errorf("registry answered %s: %w", resp.Status, errdefs.ErrNotFound)
	default:
		return 0, fmt.Errorf("registry answered %s: %w", resp.Status, errdefs.ErrInvalid)
	}
	n, err := io.Copy(io.MultiWriter(file, h, addWriter(f.add)), io.LimitReader(resp.Body, size-off))
	if err != nil {
		if ctx.Err() != nil {
			return n, ctx.Err()
		}
		return n, fmt.Errorf("reading blob after %d bytes: %w: %w", off+n, err, errdefs.ErrUnavailable)
	}
	if off+n < size {
		return n, fmt.Errorf("blob ended after %d of %d bytes: %w", off+n, size, errdefs.ErrUnavailable)
	}
	return n, nil
}

type addWriter func(int64)

func (a addWriter) Write(p []byte) (int, error) { a(int64(len(p))); return len(p), nil }

// errNotPrefetched: the layer was not among those to download (its tree was expected in the
// repository); it is read from the registry directly.
var errNotPrefetched = errors.New("layer not prefetched")

// prefetch starts downloading the blobs of layers (index → layer) jobs at a time, in index
// order, and returns a function that waits for layer i's file. Stop cancels what is left and
// waits for the downloads to end.
func (f *blobFetcher) prefetch(ctx context.Context, layers map[int]v1.Layer, order []int) (wait func(i int) (string, error), stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	type result struct {
		path string
		err  error
	}
	done := make(map[int]chan result, len(order))
	for _, i := range order {
		done[i] = make(chan result, 1)
	}
	sem := make(chan struct{}, f.jobs)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, i := range order {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				done[i] <- result{err: ctx.Err()}
				continue
			}
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				defer func() { <-sem }()
				l := layers[i]
				d, err := l.Digest()
				if err != nil {
					done[i] <- result{err: err}
					return
				}
				size, err := l.Size()
				if err != nil {
					done[i] <- result{err: err}
					return
				}
				p, err := f.fetch(ctx, d, size)
				done[i] <- result{path: p, err: err}
			}(i)
		}
	}()
	wait = func(i int) (string, error) {
		ch, ok := done[i]
		if !ok {
			return "", errNotPrefetched
		}
		r := <-ch
		return r.path, r.err
	}
	stop = func() {
		cancel()
		wg.Wait()
	}
	return wait, stop
}
