package provision

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coreos/ignition/v2/config/v3_5/types"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/vincent-petithory/dataurl"
)

// Size bounds of fetched content: per resource and for a whole config.
const (
	maxResource = 256 << 20
	maxTotal    = 1 << 30
)

// fetchAttempts bounds the retries of an http(s) fetch that failed with a connection error or
// a 5xx status; Ignition retries those forever, which would hang a node with no way out.
const fetchAttempts = 4

// fetcher fetches and verifies resources.
type fetcher struct {
	client  *http.Client
	total   int64
	timeout time.Duration
}

// fetch returns the verified, decompressed content of one resource. path is the resource's
// JSON path, for errors.
func (f *fetcher) fetch(ctx context.Context, path string, r types.Resource) ([]byte, error) {
	if r.Source == nil {
		return nil, nil
	}
	src := *r.Source
	u, err := url.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s.source: parsing URL: %w: %w", path, err, errdefs.ErrInvalid)
	}
	var data []byte
	switch u.Scheme {
	case "data":
		d, err := dataurl.DecodeString(src)
		if err != nil {
			return nil, fmt.Errorf("%s.source: decoding data URL: %w: %w", path, err, errdefs.ErrInvalid)
		}
		data = d.Data
	case "http", "https":
		data, err = f.http(ctx, src, r.HTTPHeaders)
		if err != nil {
			return nil, fmt.Errorf("%s.source: fetching %s: %w", path, redact(u), err)
		}
	default:
		return nil, fmt.Errorf("%s.source: URL scheme %q: strata fetches data, http and https only: %w", path, u.Scheme, errdefs.ErrUnsupported)
	}
	if c := r.Compression; c != nil && *c != "" {
		if *c != "gzip" {
			return nil, fmt.Errorf("%s.compression: %q: %w", path, *c, errdefs.ErrUnsupported)
		}
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: decompressing gzip: %w: %w", path, err, errdefs.ErrInvalid)
		}
		data, err = io.ReadAll(io.LimitReader(zr, maxResource+1))
		if err == nil && len(data) > maxResource {
			err = fmt.Errorf("more than %d bytes: %w", maxResource, errdefs.ErrInvalid)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: decompressing gzip: %w", path, err)
		}
	}
	if err := verify(data, r.Verification); err != nil {
		return nil, fmt.Errorf("%s.verification.hash: %w", path, err)
	}
	f.total += int64(len(data))
	if f.total > maxTotal {
		return nil, fmt.Errorf("%s: the config's contents exceed %d bytes: %w", path, maxTotal, errdefs.ErrInvalid)
	}
	return data, nil
}

// redact drops the user information and query of a URL before it goes into an error.
func redact(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = "..."
	}
	return c.String()
}

// verify checks data against "sha512-HEX" or "sha256-HEX", computed over the decompressed
// content as Ignition does.
func verify(data []byte, v types.Verification) error {
	if v.Hash == nil {
		return nil
	}
	alg, want, ok := strings.Cut(*v.Hash, "-")
	var h hash.Hash
	switch {
	case !ok:
		return fmt.Errorf("malformed hash %q: %w", *v.Hash, errdefs.ErrInvalid)
	case alg == "sha512":
		h = sha512.New()
	case alg == "sha256":
		h = sha256.New()
	default:
		return fmt.Errorf("hash function %q: %w", alg, errdefs.ErrUnsupported)
	}
	h.Write(data)
	if got := hex.EncodeToString(h.Sum(nil)); got != strings.ToLower(want) {
		return fmt.Errorf("content has %s-%s, want %s: %w", alg, got, *v.Hash, errdefs.ErrCorrupt)
	}
	return nil
}

// http fetches a URL, retrying connection errors and 5xx answers a few times with
// exponential backoff from 100 ms.
func (f *fetcher) http(ctx context.Context, src string, headers []types.HTTPHeader) ([]byte, error) {
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}
	delay := 100 * time.Millisecond
	var last error
	for attempt := range fetchAttempts {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return nil, errors.Join(last, ctx.Err())
			case <-time.After(delay):
			}
			delay *= 2
		}
		data, retry, err := f.get(ctx, src, headers)
		if err == nil {
			return data, nil
		}
		last = err
		if !retry {
			break
		}
	}
	return nil, last
}

func (f *fetcher) get(ctx context.Context, src string, headers []types.HTTPHeader) (data []byte, retry bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, false, err
	}
	for _, h := range headers {
		if h.Value != nil {
			req.Header.Set(h.Name, *h.Value)
		}
	}
	// Headers go to the URL given only, not to where it redirects (as Ignition).
	client := *f.client
	client.CheckRedirect = func(r *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		for _, h := range headers {
			r.Header.Del(h.Name)
		}
		return nil
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, true, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		err := fmt.Errorf("server answered %s", resp.Status)
		if resp.StatusCode >= 500 {
			return nil, true, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
		}
		return nil, false, fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	data, err = io.ReadAll(io.LimitReader(resp.Body, maxResource+1))
	if err != nil {
		return nil, true, fmt.Errorf("reading the answer: %w: %w", err, errdefs.ErrUnavailable)
	}
	if len(data) > maxResource {
		return nil, false, fmt.Errorf("more than %d bytes: %w", maxResource, errdefs.ErrInvalid)
	}
	return data, false, nil
}
