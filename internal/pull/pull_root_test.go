//go:build root

package pull

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// TestPullIntoBare pulls into a bare repository, which stores owners,
// modes and xattrs on the object files and so needs root.
func TestPullIntoBare(t *testing.T) {
	t.Parallel()
	testutil.RequireRoot(t)
	tree := testTree("1")
	addOwnedEntries(tree)
	src := newSource(t, tree)
	dst := newRepo(t, repo.ModeBare)
	opts := Options{URL: src.srv.URL, Refs: []string{"os/stable"}, Verifier: verifierFor(src.key), Retry: fastRetry}
	if _, err := Pull(t.Context(), dst, opts); err != nil {
		t.Fatalf("Pull(into bare) error = %v", err)
	}
	if got, err := dst.ReadRef("", "os/stable"); err != nil || got != src.commit {
		t.Errorf("ReadRef(os/stable) = %s, %v; want %s", got, err, src.commit)
	}
	if diff := cmp.Diff(reachable(t, src.repo, src.commit), reachable(t, dst, src.commit)); diff != "" {
		t.Errorf("objects of the pulled commit differ from the source (-source +pulled):\n%s", diff)
	}
}
