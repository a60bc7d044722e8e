package pull

import (
	"errors"
	"os"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// A commit-only pull (upgrade --check) stores the verified commit marked
// partial, fetches no tree object and moves no ref; a full pull afterwards
// completes it.
func TestPullCommitOnly(t *testing.T) {
	t.Parallel()
	src := newSource(t, testTree("1"))
	dst := newRepo(t, repo.ModeBareUser)
	opts := Options{URL: src.srv.URL, Refs: []string{"os/stable"}, Verifier: verifierFor(src.key), Retry: fastRetry, CommitOnly: true}
	res, err := Pull(t.Context(), dst, opts)
	if err != nil {
		t.Fatalf("Pull(CommitOnly) error = %v", err)
	}
	if len(res.Refs) != 1 || res.Refs[0].Commit != src.commit || res.Fetched != 0 {
		t.Errorf("Pull(CommitOnly) = refs %+v, fetched %d; want os/stable at %s and no tree object", res.Refs, res.Fetched, src.commit)
	}
	if objs := objectRequests(src.srv.requests(), ".dirtree", ".dirmeta", ".filez"); len(objs) != 0 {
		t.Errorf("Pull(CommitOnly) requested %q, want no tree object", objs)
	}
	if _, err := dst.ReadRef("", "os/stable"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReadRef(os/stable) after a commit-only pull: error = %v, want ErrNotFound", err)
	}
	if ok, err := dst.HasObject(ostree.ObjectName{Checksum: src.commit, Type: ostree.ObjectCommit}); !ok || err != nil {
		t.Errorf("HasObject(commit) = %v, %v; want the verified commit stored", ok, err)
	}
	if _, err := os.Stat(partialPath(dst, src.commit)); err != nil {
		t.Errorf("commitpartial marker after a commit-only pull: %v, want it present", err)
	}

	opts.CommitOnly = false
	if _, err := Pull(t.Context(), dst, opts); err != nil {
		t.Fatalf("Pull(full after commit-only) error = %v", err)
	}
	if got, err := dst.ReadRef("", "os/stable"); err != nil || got != src.commit {
		t.Errorf("ReadRef(os/stable) = %s, %v; want %s", got, err, src.commit)
	}
	if _, err := os.Stat(partialPath(dst, src.commit)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("commitpartial marker after the full pull: stat error = %v, want not exist", err)
	}
	if _, err := repo.Checkout(t.Context(), dst, "os/stable", t.TempDir()+"/co", repo.CheckoutOptions{UserMode: true}); err != nil {
		t.Errorf("Checkout(after full pull) error = %v", err)
	}
}
