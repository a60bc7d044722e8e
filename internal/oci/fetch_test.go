package oci

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

// dropper cuts the connection halfway through the next drops answers for one blob, and
// records the Range header of every request for it.
type dropper struct {
	next   http.Handler
	digest string
	mu     sync.Mutex
	drops  int
	ranges []string
}

func (d *dropper) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, "/blobs/"+d.digest) {
		d.mu.Lock()
		d.ranges = append(d.ranges, r.Header.Get("Range"))
		cut := d.drops > 0
		if cut {
			d.drops--
		}
		d.mu.Unlock()
		if cut {
			rec := httptest.NewRecorder()
			d.next.ServeHTTP(rec, r)
			for k, v := range rec.Header() {
				w.Header()[k] = v
			}
			w.WriteHeader(rec.Code)
			body := rec.Body.Bytes()
			w.Write(body[:len(body)/2])
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler) // the connection drops
		}
	}
	d.next.ServeHTTP(w, r)
}

func (d *dropper) set(drops int) []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.drops = drops
	r := d.ranges
	d.ranges = nil
	return r
}

// pushToDropper pushes a commit to a registry behind a dropper aimed at its biggest layer,
// and returns the image reference, the dropper and that layer's size.
func pushToDropper(t *testing.T) (string, *dropper, int64, *repo.Repo) {
	t.Helper()
	src := newRepo(t, repo.ModeArchive)
	commitTree(t, src, osTree(t, "1.0"), "1.0")
	img := encapsulated(t, src)
	mf, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	big := mf.Layers[0]
	for _, l := range mf.Layers {
		if l.Size > big.Size {
			big = l
		}
	}
	d := &dropper{next: newTestRegistry(), digest: big.Digest.String()}
	srv := httptest.NewServer(d)
	t.Cleanup(srv.Close)
	ref := "docker://" + strings.TrimPrefix(srv.URL, "http://") + "/strata/os:1.0"
	if _, err := Push(context.Background(), src, "os", ref, PushOptions{RegistryOptions: RegistryOptions{Insecure: true}}); err != nil {
		t.Fatal(err)
	}
	return ref, d, big.Size, src
}

// TestPullResumesDroppedBlob: a connection dropped halfway through a layer blob is resumed
// with a Range request from where it stopped; nothing is downloaded twice.
func TestPullResumesDroppedBlob(t *testing.T) {
	t.Parallel()
	ref, d, size, _ := pushToDropper(t)
	d.set(1)
	dst := newRepo(t, repo.ModeArchive)
	res, err := Pull(context.Background(), dst, ref, PullOptions{RegistryOptions: RegistryOptions{Insecure: true}, Ref: "os"})
	if err != nil {
		t.Fatalf("Pull with a dropped connection = %v, want it resumed", err)
	}
	ranges := d.set(0)
	if len(ranges) != 2 || ranges[0] != "" || !strings.HasPrefix(ranges[1], "bytes="+strconv.FormatInt(size/2, 10)+"-") {
		t.Errorf("requests for the blob cut at %d of %d bytes: Range %q, want none then bytes=%d-", size/2, size, ranges, size/2)
	}
	if res.BytesFetched != res.BytesToFetch {
		t.Errorf("Pull downloaded %d bytes of %d to fetch, want each byte once", res.BytesFetched, res.BytesToFetch)
	}
	fsckClean(t, dst)
}

// TestPullResumesInterruptedPull: a pull that gave up after repeated drops moves no ref and
// keeps the partial blob; the next pull continues it from where it stopped.
func TestPullResumesInterruptedPull(t *testing.T) {
	t.Parallel()
	ref, d, size, _ := pushToDropper(t)
	d.set(1000)
	dst := newRepo(t, repo.ModeArchive)
	opts := PullOptions{RegistryOptions: RegistryOptions{Insecure: true}, Ref: "os"}
	if _, err := Pull(context.Background(), dst, ref, opts); !errors.Is(err, errdefs.ErrUnavailable) {
		t.Fatalf("Pull with every answer cut = %v, want ErrUnavailable", err)
	}
	refusedCleanly(t, dst)
	part := filepath.Join(dst.Path(), "tmp", blobDir, strings.Replace(d.digest, ":", "-", 1)+".partial")
	fi, err := os.Stat(part)
	if err != nil || fi.Size() == 0 || fi.Size() >= size {
		t.Fatalf("partial blob %v (%v), want part of %d bytes", fi, err, size)
	}
	d.set(0)
	if _, err := Pull(context.Background(), dst, ref, opts); err != nil {
		t.Fatal(err)
	}
	ranges := d.set(0)
	if len(ranges) != 1 || !strings.HasPrefix(ranges[0], "bytes="+strconv.FormatInt(fi.Size(), 10)+"-") {
		t.Errorf("requests for the blob in the second pull: Range %q, want bytes=%d-", ranges, fi.Size())
	}
	fsckClean(t, dst)
	if left, _ := os.ReadDir(filepath.Join(dst.Path(), "tmp", blobDir)); len(left) != 0 {
		t.Errorf("blobs left after a successful pull: %d, want none", len(left))
	}
}
