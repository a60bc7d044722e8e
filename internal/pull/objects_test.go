package pull

import (
	"fmt"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/repo"
)

// Content is fetched while the walk of the tree goes on: metadata waiting takes at most half
// the workers, and the others fetch the content found so far, so that decoding and storing
// it overlaps the walk's round trips to the server.
func TestPullFetchesContentDuringTheWalk(t *testing.T) {
	t.Parallel()
	tree := map[string]entry{}
	for i := range 50 {
		tree[fmt.Sprintf("top%02d", i)] = entry{Data: fmt.Sprintf("top file %d\n", i)}
	}
	for i := range 200 {
		tree[fmt.Sprintf("d%03d/f", i)] = entry{Data: fmt.Sprintf("file %d\n", i)}
	}
	src := newSource(t, tree)
	dst := newRepo(t, repo.ModeBareUser)
	src.srv.requests()
	opts := pullOpts(src.srv.URL, "os/stable")
	opts.Parallel = 4
	if _, err := Pull(t.Context(), dst, opts); err != nil {
		t.Fatal(err)
	}
	objs := objectRequests(src.srv.requests(), ".dirtree", ".filez")
	first := -1
	trees, after := 0, 0
	for i, p := range objs {
		switch {
		case strings.HasSuffix(p, ".filez") && first < 0:
			first = i
		case strings.HasSuffix(p, ".dirtree"):
			trees++
			if first >= 0 {
				after++
			}
		}
	}
	if trees != 201 || first < 0 {
		t.Fatalf("pull requested %d dirtrees and its first content object at %d; want 201 and some", trees, first)
	}
	// Strictly metadata first, content would start only with the last few dirtrees in flight.
	if after < trees/2 {
		t.Errorf("%d of %d dirtrees were requested after the first content object, want at least half", after, trees)
	}
}
