//go:build peer

package delta

import (
	"context"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

func ostreeRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(testutil.Ostree(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// publish writes the delta indexes and the summary with its
// ostree.static-deltas, as strata repo summary does.
func publish(t *testing.T, r *repo.Repo) {
	t.Helper()
	if err := Reindex(r); err != nil {
		t.Fatal(err)
	}
	_, err := r.RegenerateSummary(repo.SummaryOptions{StaticDeltas: func() ([]gvariant.DictEntry, error) {
		d, err := Digests(r)
		return DigestMap(d), err
	}})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPeerOstreeShowsStrataDelta: ostree static-delta show decodes strata's
// superblocks and parts, and counts what strata wrote.
func TestPeerOstreeShowsStrataDelta(t *testing.T) {
	t.Parallel()
	f := newFixture(t, repo.ModeArchive)
	ctx := context.Background()
	scratch, err := Generate(ctx, f.src, ostree.Checksum{}, f.c2, Options{MinFallbackSize: 100 << 10})
	if err != nil {
		t.Fatal(err)
	}
	// Not --inline: ostree 2022.7's show reads inline parts from files,
	// even those its own generator inlined.
	up, err := Generate(ctx, f.src, f.c1, f.c2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	list := ostreeRun(t, "--repo="+f.src.Path(), "static-delta", "list")
	for _, sb := range []*Superblock{scratch, up} {
		if !strings.Contains(list, sb.Name.String()) {
			t.Errorf("ostree static-delta list = %q, want %s in it", list, sb.Name)
		}
		out := ostreeRun(t, "--repo="+f.src.Path(), "static-delta", "show", sb.Name.String())
		var objs int
		for _, p := range sb.Parts {
			objs += len(p.Objects)
		}
		for _, want := range []string{
			"To: " + f.c2.String(),
			"Number of parts: " + strconv.Itoa(len(sb.Parts)),
			"Number of fallback entries: " + strconv.Itoa(len(sb.Fallbacks)),
			"PartMeta0: nobjects=" + strconv.Itoa(objs),
			"openspliceclose=",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("ostree static-delta show %s:\n%s\nwant %q in it", sb.Name, out, want)
			}
		}
	}
}

// recorder records the paths a handler served.
type recorder struct {
	h     http.Handler
	mu    sync.Mutex
	paths []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	r.mu.Unlock()
	r.h.ServeHTTP(w, req)
}

func (r *recorder) served(re *regexp.Regexp) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, p := range r.paths {
		if re.MatchString(p) {
			n++
		}
	}
	return n
}

// TestPeerOstreePullsStrataDelta: ostree pull --require-static-deltas from a
// repository whose deltas strata generated and published, first from empty
// then from the commit it has, ends with the target commit and a clean
// ostree fsck.
func TestPeerOstreePullsStrataDelta(t *testing.T) {
	t.Parallel()
	f := newFixture(t, repo.ModeArchive)
	ctx := context.Background()
	if _, err := Generate(ctx, f.src, ostree.Checksum{}, f.c1, Options{MinFallbackSize: 100 << 10}); err != nil {
		t.Fatal(err)
	}
	up, err := Generate(ctx, f.src, f.c1, f.c2, Options{})
	if err != nil {
		t.Fatal(err)
	}
	publish(t, f.src)

	// Any static web server serves a repository; strata repo serve is
	// tested on its own in package pull, which imports this one.
	rec := &recorder{h: http.FileServer(http.Dir(f.src.Path()))}
	srv := httptest.NewServer(rec)
	defer srv.Close()

	client := filepath.Join(t.TempDir(), "client")
	// ostree applies deltas only into bare repositories ("Can't use static
	// deltas in an archive repo").
	ostreeRun(t, "--repo="+client, "init", "--mode=bare-user")
	ostreeRun(t, "--repo="+client, "remote", "add", "--no-gpg-verify", "o", srv.URL)
	ostreeRun(t, "--repo="+client, "pull", "--require-static-deltas", "o", "os@"+f.c1.String())
	parts := regexp.MustCompile(`^/deltas/.*/[0-9]+$`)
	if n := rec.served(parts); n != 1 {
		t.Errorf("first pull fetched %d delta parts, want 1 (the scratch delta's)", n)
	}
	out := ostreeRun(t, "--repo="+client, "pull", "--require-static-deltas", "o", "os")
	if !strings.Contains(out, "delta parts") {
		t.Errorf("ostree pull said %q, want it to report delta parts; served %q", out, rec.paths)
	}
	if n := rec.served(regexp.MustCompile("^/" + regexp.QuoteMeta(up.Name.PartPath(0)) + "$")); n != 1 {
		t.Errorf("second pull fetched part 0 of %s %d times, want 1", up.Name, n)
	}
	// ostree 2022.7 also fetches some objects loose while it applies a
	// delta, with deltas of its own generator too (its commit scan runs
	// beside the part's writes), so loose fetches prove nothing either way.
	if got := strings.TrimSpace(ostreeRun(t, "--repo="+client, "rev-parse", "o:os")); got != f.c2.String() {
		t.Errorf("o:os = %s, want %s", got, f.c2)
	}
	ostreeRun(t, "--repo="+client, "fsck")
}

// TestPeerStrataAppliesOstreeDelta: deltas that ostree static-delta generate
// wrote (splice, write and read-source operations) give strata the same
// commit, with a clean fsck.
func TestPeerStrataAppliesOstreeDelta(t *testing.T) {
	t.Parallel()
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, mode)
			src := "--repo=" + f.src.Path()
			ostreeRun(t, src, "static-delta", "generate", "--empty", "--to="+f.c1.String())
			ostreeRun(t, src, "static-delta", "generate", "--disable-bsdiff", "--from="+f.c1.String(), "--to="+f.c2.String())
			for _, n := range []Name{{To: f.c1}, {From: f.c1, To: f.c2}} {
				sb, err := f.applyFromDir(t, n)
				if err != nil {
					t.Fatalf("ApplyOffline(ostree's %s) = %v", n, err)
				}
				if sb.Name != n {
					t.Errorf("applied %s, want %s", sb.Name, n)
				}
			}
			if err := f.dst.SetRef("", "os", f.c2); err != nil {
				t.Fatal(err)
			}
			fsckClean(t, f.dst)
		})
	}
}

// TestPeerStrataAppliesOstreeBsdiff: a delta whose modified file ostree
// encoded as a bsdiff patch against the old one gives strata the same
// commit.
func TestPeerStrataAppliesOstreeBsdiff(t *testing.T) {
	t.Parallel()
	tmp := t.TempDir()
	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	rnd := rand.New(rand.NewPCG(1, 2))
	lib := make([]byte, 256<<10)
	for i := range lib {
		lib[i] = byte(rnd.Uint32())
	}
	writeTree(t, filepath.Join(tmp, "t1"), map[string]string{"usr/lib/libx.so": string(lib)})
	c1 := commitDir(t, src, filepath.Join(tmp, "t1"))
	for i := 0; i < len(lib); i += 700 { // scattered edits: no rollsum match, a good bsdiff
		lib[i]++
	}
	writeTree(t, filepath.Join(tmp, "t2"), map[string]string{"usr/lib/libx.so": string(lib)})
	c2 := commitDir(t, src, filepath.Join(tmp, "t2"))
	ostreeRun(t, "--repo="+src.Path(), "static-delta", "generate", "--empty", "--to="+c1.String())
	ostreeRun(t, "--repo="+src.Path(), "static-delta", "generate", "--from="+c1.String(), "--to="+c2.String())
	up := Name{From: c1, To: c2}
	if out := ostreeRun(t, "--repo="+src.Path(), "static-delta", "show", up.String()); !regexp.MustCompile(`bspatch=[1-9]`).MatchString(out) {
		t.Fatalf("ostree's delta has no bspatch operation:\n%s", out)
	}
	dst, err := repo.Init(filepath.Join(tmp, "dst"), repo.ModeBareUserOnly)
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	for _, n := range []Name{{To: c1}, up} {
		if _, err := ApplyOffline(context.Background(), dst, filepath.Join(src.Path(), n.Dir())); err != nil {
			t.Fatalf("ApplyOffline(ostree's %s) = %v", n, err)
		}
	}
	if err := dst.SetRef("", "os", c2); err != nil {
		t.Fatal(err)
	}
	fsckClean(t, dst)
}
