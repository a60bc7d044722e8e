package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/delta"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// deltaEnv is a served repository with commits c1 and c2 of os/stable,
// the scratch delta to c1 and the delta c1 -> c2 published, and a client
// that pulls from it.
type deltaEnv struct {
	src, client *repo.Repo
	srv         *server
	c1, c2      ostree.Checksum
	up          delta.Name
}

func publishDeltas(t testing.TB, r *repo.Repo) {
	t.Helper()
	if err := delta.Reindex(r); err != nil {
		t.Fatal(err)
	}
	_, err := r.RegenerateSummary(repo.SummaryOptions{StaticDeltas: func() ([]gvariant.DictEntry, error) {
		d, err := delta.Digests(r)
		return delta.DigestMap(d), err
	}})
	if err != nil {
		t.Fatal(err)
	}
}

func newDeltaEnv(t *testing.T, mode repo.Mode) *deltaEnv {
	t.Helper()
	e := &deltaEnv{src: newRepo(t, repo.ModeArchive), client: newRepo(t, mode)}
	e.c1 = buildCommit(t, e.src, commitSpec{Ref: "os/stable", Tree: testTree("1")})
	e.c2 = buildCommit(t, e.src, commitSpec{Ref: "os/stable", Tree: testTree("2"), Parent: e.c1, Timestamp: 1700000100})
	ctx := context.Background()
	if _, err := delta.Generate(ctx, e.src, ostree.Checksum{}, e.c1, delta.Options{}); err != nil {
		t.Fatal(err)
	}
	if _, err := delta.Generate(ctx, e.src, e.c1, e.c2, delta.Options{}); err != nil {
		t.Fatal(err)
	}
	e.up = delta.Name{From: e.c1, To: e.c2}
	publishDeltas(t, e.src)
	e.srv = newServer(t, e.src)
	return e
}

// firstPull brings c1 to the client by its scratch delta.
func (e *deltaEnv) firstPull(t *testing.T) {
	t.Helper()
	opts := pullOpts(e.srv.URL, "os/stable@"+e.c1.String())
	opts.RequireStaticDeltas = true
	res, err := Pull(context.Background(), e.client, opts)
	if err != nil {
		t.Fatalf("first pull by the scratch delta: %v", err)
	}
	if len(res.Deltas) != 1 || res.Deltas[0].Name != e.c1.String() || res.Deltas[0].Fallback != "" {
		t.Fatalf("first pull used deltas %+v, want the scratch delta to %s", res.Deltas, e.c1)
	}
	e.srv.requests()
}

func objectFetches(paths []string) int {
	n := 0
	for _, p := range paths {
		if strings.HasPrefix(p, "objects/") && !strings.HasSuffix(p, ".commit") && !strings.HasSuffix(p, ".commitmeta") {
			n++
		}
	}
	return n
}

func TestPullUsesDelta(t *testing.T) {
	t.Parallel()
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			e := newDeltaEnv(t, mode)
			e.firstPull(t)
			var announced uint64
			opts := pullOpts(e.srv.URL, "os/stable")
			opts.DeltaStarted = func(name string, n uint64) { announced = n }
			res, err := Pull(context.Background(), e.client, opts)
			if err != nil {
				t.Fatal(err)
			}
			paths := e.srv.requests()
			if len(res.Deltas) != 1 || res.Deltas[0].Name != e.up.String() || res.Deltas[0].Fallback != "" {
				t.Fatalf("pull used deltas %+v, want %s applied", res.Deltas, e.up)
			}
			if !slices.Contains(paths, e.up.PartPath(0)) {
				t.Errorf("requests %q lack part 0 of the delta", paths)
			}
			if n := objectFetches(paths); n != 0 {
				t.Errorf("pull fetched %d loose objects beside the delta: %q", n, paths)
			}
			sb, err := delta.Read(e.src, e.up)
			if err != nil {
				t.Fatal(err)
			}
			if announced != sb.DownloadSize() || announced == 0 {
				t.Errorf("announced %d bytes, the superblock says %d", announced, sb.DownloadSize())
			}
			if got, _ := e.client.ReadRef("", "os/stable"); got != e.c2 {
				t.Errorf("os/stable = %s, want %s", got, e.c2)
			}
			fsckOK(t, e.client)
		})
	}
}

// TestPullByChecksum: a bare checksum pulls that commit (by the delta from
// the commit the client has, or from empty) and moves no ref.
func TestPullByChecksum(t *testing.T) {
	t.Parallel()
	e := newDeltaEnv(t, repo.ModeArchive)
	res, err := Pull(context.Background(), e.client, pullOpts(e.srv.URL, e.c1.String()))
	if err != nil {
		t.Fatalf("Pull(%s) = %v", e.c1, err)
	}
	if len(res.Refs) != 0 {
		t.Errorf("pull by checksum reported refs %+v", res.Refs)
	}
	if refs, _ := e.client.ListRefs(); len(refs) != 0 {
		t.Errorf("pull by checksum wrote refs %v", refs)
	}
	if len(res.Deltas) != 1 || res.Deltas[0].Fallback != "" {
		t.Errorf("pull by checksum used deltas %+v, want the scratch delta", res.Deltas)
	}
	if _, err := e.client.ReadCommit(e.c1); err != nil {
		t.Fatal(err)
	}
	fsckOK(t, e.client)
}

// TestPullBadDelta: each way a delta can be bad ends with the objects
// pulled loose (or, with RequireStaticDeltas, an error and the ref where it
// was), no bad object stored and fsck clean.
func TestPullBadDelta(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		spoil  func(t *testing.T, e *deltaEnv)
		reason string
	}{
		{"tampered part", func(t *testing.T, e *deltaEnv) {
			p := filepath.Join(e.src.Path(), e.up.PartPath(0))
			b, _ := os.ReadFile(p)
			b[len(b)/2] ^= 0xff
			os.WriteFile(p, b, 0o644)
		}, "part hashes to"},
		{"truncated part", func(t *testing.T, e *deltaEnv) {
			p := filepath.Join(e.src.Path(), e.up.PartPath(0))
			b, _ := os.ReadFile(p)
			os.WriteFile(p, b[:len(b)/2], 0o644)
		}, "its header says"},
		{"missing part", func(t *testing.T, e *deltaEnv) {
			os.Remove(filepath.Join(e.src.Path(), e.up.PartPath(0)))
		}, "fetching part 0"},
		{"superblock not what the summary says", func(t *testing.T, e *deltaEnv) {
			p := filepath.Join(e.src.Path(), e.up.SuperblockPath())
			b, _ := os.ReadFile(p)
			b[len(b)-1] ^= 0xff
			os.WriteFile(p, b, 0o644)
		}, "the summary says"},
		{"delta to another commit", func(t *testing.T, e *deltaEnv) {
			// The superblock of the scratch delta to c1 where the summary
			// announces the delta to c2, with a matching digest.
			b, _ := os.ReadFile(filepath.Join(e.src.Path(), delta.Name{To: e.c1}.SuperblockPath()))
			os.WriteFile(filepath.Join(e.src.Path(), e.up.SuperblockPath()), b, 0o644)
			publishDeltas(t, e.src)
		}, "superblock is of delta"},
	}
	for _, tc := range cases {
		for _, require := range []bool{false, true} {
			t.Run(tc.name+map[bool]string{true: "/required", false: ""}[require], func(t *testing.T) {
				t.Parallel()
				e := newDeltaEnv(t, repo.ModeBareUserOnly)
				e.firstPull(t)
				tc.spoil(t, e)
				opts := pullOpts(e.srv.URL, "os/stable")
				opts.RequireStaticDeltas = require
				res, err := Pull(context.Background(), e.client, opts)
				got, _ := e.client.ReadRef("", "os/stable")
				if require {
					if err == nil || !strings.Contains(err.Error(), tc.reason) {
						t.Fatalf("Pull = %v, want an error saying %q", err, tc.reason)
					}
					if got != e.c1 {
						t.Errorf("os/stable = %s after a failed pull, want %s", got, e.c1)
					}
				} else {
					if err != nil {
						t.Fatalf("Pull = %v, want a fallback to objects", err)
					}
					if len(res.Deltas) != 1 || !strings.Contains(res.Deltas[0].Fallback, tc.reason) {
						t.Errorf("deltas %+v, want a fallback saying %q", res.Deltas, tc.reason)
					}
					if got != e.c2 {
						t.Errorf("os/stable = %s, want %s", got, e.c2)
					}
				}
				fsckOK(t, e.client)
			})
		}
	}
}

func TestPullNoDelta(t *testing.T) {
	t.Parallel()
	e := newDeltaEnv(t, repo.ModeArchive)
	e.firstPull(t)
	if err := delta.Delete(e.src, e.up); err != nil {
		t.Fatal(err)
	}
	publishDeltas(t, e.src)
	opts := pullOpts(e.srv.URL, "os/stable")
	opts.RequireStaticDeltas = true
	if _, err := Pull(context.Background(), e.client, opts); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Pull(require, no delta) = %v, want ErrNotFound", err)
	}
	opts = pullOpts(e.srv.URL, "os/stable")
	opts.DisableStaticDeltas = true
	res, err := Pull(context.Background(), e.client, opts)
	if err != nil || len(res.Deltas) != 0 || res.Fetched == 0 {
		t.Errorf("Pull(disabled) = %+v, %v, want objects and no delta", res, err)
	}
}

func fsckOK(t *testing.T, r *repo.Repo) {
	t.Helper()
	rep, err := repo.Fsck(context.Background(), r, repo.FsckOptions{})
	if err != nil {
		t.Fatalf("Fsck(%s): %v", r.Path(), err)
	}
	if !rep.OK() {
		t.Errorf("Fsck(%s) found %d problems: %v", r.Path(), rep.Errors(), rep.Problems)
	}
}

// TestPullDeltaFrom: when the ref names a commit the client does not have
// complete, the delta from DeltaFrom (a node's booted commit) is used;
// without DeltaFrom the pull fetches objects.
func TestPullDeltaFrom(t *testing.T) {
	t.Parallel()
	for _, from := range []bool{true, false} {
		t.Run(map[bool]string{true: "from booted", false: "no hint"}[from], func(t *testing.T) {
			t.Parallel()
			e := newDeltaEnv(t, repo.ModeArchive)
			e.firstPull(t)
			var elsewhere ostree.Checksum
			elsewhere[0] = 1
			if err := e.client.SetRef("", "os/stable", elsewhere); err != nil {
				t.Fatal(err)
			}
			opts := pullOpts(e.srv.URL, "os/stable")
			if from {
				opts.DeltaFrom = e.c1
			}
			res, err := Pull(context.Background(), e.client, opts)
			if err != nil {
				t.Fatal(err)
			}
			used := len(res.Deltas) == 1 && res.Deltas[0].Name == e.up.String() && res.Deltas[0].Fallback == ""
			if used != from {
				t.Errorf("Pull(DeltaFrom set: %v) used deltas %+v, want %s used: %v", from, res.Deltas, e.up, from)
			}
			fsckOK(t, e.client)
		})
	}
}

// TestDeltaSizeThenPullFetchSuperblockOnce: sizing a delta and then pulling it with the same
// SuperblockCache fetches the superblock once; without the cache, twice. A cached
// superblock is still checked against the summary's digest.
func TestDeltaSizeThenPullFetchSuperblockOnce(t *testing.T) {
	t.Parallel()
	for _, cached := range []bool{false, true} {
		t.Run(fmt.Sprintf("cache=%v", cached), func(t *testing.T) {
			t.Parallel()
			e := newDeltaEnv(t, repo.ModeArchive)
			e.firstPull(t)
			var sbs *SuperblockCache
			if cached {
				sbs = &SuperblockCache{}
			}
			opts := pullOpts(e.srv.URL, "os/stable")
			opts.Superblocks = sbs
			n, err := DeltaSize(context.Background(), e.client, opts, e.c1, e.c2)
			if err != nil || n <= 0 {
				t.Fatalf("DeltaSize = %d, %v", n, err)
			}
			res, err := Pull(context.Background(), e.client, opts)
			if err != nil || len(res.Deltas) != 1 || res.Deltas[0].Fallback != "" {
				t.Fatalf("Pull = %+v, %v; want the delta applied", res, err)
			}
			fetched := 0
			for _, p := range e.srv.requests() {
				if p == e.up.SuperblockPath() {
					fetched++
				}
			}
			if want := map[bool]int{false: 2, true: 1}[cached]; fetched != want {
				t.Errorf("superblock fetched %d times, want %d", fetched, want)
			}
			fsckOK(t, e.client)
		})
	}
	// A cached copy whose bytes do not hash to the digest is refused, not used.
	var c SuperblockCache
	var d ostree.Checksum
	c.put(d, []byte("not a superblock"))
	p := &puller{opts: Options{Superblocks: &c}}
	if _, _, err := p.fetchSuperblock(context.Background(), delta.Name{To: d}, d); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("fetchSuperblock of a bad cached copy = %v, want ErrCorrupt", err)
	}
}
