//go:build peer && root

package interop

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
)

// The pull interop tests publish repositories over HTTP on loopback and pull them with the other
// tool, in both directions:
//
//   - `ostree pull` from `strata repo serve` (a repository strata committed), with and without
//     a summary, into archive, bare-user and bare repositories; ostree fsck passes and ostree's
//     checkout reproduces the source tree;
//   - `strata repo pull` from an archive repository that ostree wrote, published by Python's
//     http.server, with and without `ostree summary -u`; strata's and ostree's fsck pass and
//     strata's checkout reproduces the source tree;
//   - a mirror: strata pulls into an archive repository, writes its summary and serves it, and
//     ostree pulls from the mirror;
//   - the test vectors' repo-archive (C2 with parent C1) pulled by strata with --depth 1.

// pullRef is the branch the pull tests publish.
const pullRef = "test/ref"

// pullSource is an archive repository holding the awkward tree at pullRef.
type pullSource struct {
	repo   string
	commit string
}

// strataSource returns an archive repository, written by strata, with the awkward tree
// committed to pullRef; summary says whether it has a summary (strata repo summary).
func strataSource(t *testing.T, summary bool) pullSource {
	t.Helper()
	s, err := strataSources[summary]()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ostreeSource is strataSource, written by ostree (summary: ostree summary -u).
func ostreeSource(t *testing.T, summary bool) pullSource {
	t.Helper()
	s, err := ostreeSources[summary]()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

var (
	strataSources = map[bool]func() (pullSource, error){
		false: sync.OnceValues(func() (pullSource, error) { return makeSource("strata", false) }),
		true:  sync.OnceValues(func() (pullSource, error) { return makeSource("strata", true) }),
	}
	ostreeSources = map[bool]func() (pullSource, error){
		false: sync.OnceValues(func() (pullSource, error) { return makeSource("ostree", false) }),
		true:  sync.OnceValues(func() (pullSource, error) { return makeSource("ostree", true) }),
	}
)

const pullTimestamp = 1672531200

func makeSource(tool string, summary bool) (pullSource, error) {
	tree, err := awkwardTree()
	if err != nil {
		return pullSource{}, err
	}
	dir := filepath.Join(scratch, "pull-sources", fmt.Sprintf("%s-summary-%v", tool, summary))
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return pullSource{}, err
	}
	var out string
	if tool == "strata" {
		if _, err = strataOK("repo", "init", "--repo", dir, "--mode", "archive"); err == nil {
			out, err = strataOK("repo", "commit", "--repo", dir, "--branch", pullRef, "--tree", tree,
				"--subject", "pull source", "--timestamp", strconv.Itoa(pullTimestamp))
		}
		if err == nil && summary {
			_, err = strataOK("repo", "summary", "--repo", dir)
		}
	} else {
		if _, err = ostreeOK("--repo="+dir, "init", "--mode=archive"); err == nil {
			out, err = ostreeOK("--repo="+dir, "commit", "-b", pullRef, "--tree=dir="+tree,
				"-s", "pull source", fmt.Sprintf("--timestamp=@%d", pullTimestamp))
		}
		if err == nil && summary {
			_, err = ostreeOK("--repo="+dir, "summary", "-u")
		}
	}
	if err != nil {
		return pullSource{}, fmt.Errorf("making the %s pull source: %w", tool, err)
	}
	commit, err := checksumOut(out)
	if err != nil {
		return pullSource{}, err
	}
	return pullSource{repo: dir, commit: commit}, nil
}

// serveStrata runs `strata repo serve` for repo on a free port until the test ends and returns
// the URL it prints.
func serveStrata(t *testing.T, repo string) string {
	t.Helper()
	cmd := exec.Command(strataBin, "repo", "serve", "--repo", repo, "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting strata repo serve: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	urls := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u := regexp.MustCompile(`http://127\.0\.0\.1:[0-9]+/?`).FindString(sc.Text()); u != "" {
				urls <- strings.TrimSuffix(u, "/")
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		close(urls)
	}()
	select {
	case u, ok := <-urls:
		if !ok {
			t.Fatalf("strata repo serve --repo %s printed no URL; stderr: %s", repo, stderr.String())
		}
		waitServing(t, u+"/config")
		return u
	case <-time.After(30 * time.Second):
		t.Fatalf("strata repo serve --repo %s printed no URL within 30s; stderr: %s", repo, stderr.String())
	}
	return ""
}

// servePython publishes dir with `python3 -m http.server` (what a plain static web server does)
// until the test ends and returns its URL.
func servePython(t *testing.T, dir string) string {
	t.Helper()
	python := testutil.RequireTool(t, "python3", "python3")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(python, "-m", "http.server", "--bind", "127.0.0.1", strconv.Itoa(port))
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting python3 -m http.server: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	u := fmt.Sprintf("http://127.0.0.1:%d", port)
	waitServing(t, u+"/config")
	return u
}

// waitServing polls url until it answers 200, for up to 30 seconds.
func waitServing(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		last = err
		select {
		case <-ctx.Done():
			t.Fatalf("the server at %s does not answer: %v", url, last)
		case <-tick.C:
		}
	}
}

// revParse returns the commit a ref of repo points at, read by ostree.
func revParse(t *testing.T, repo, ref string) string {
	t.Helper()
	return strings.TrimSpace(mustOstree(t, "--repo="+repo, "rev-parse", ref))
}

// TestOstreePullsFromStrataServe: ostree pulls a commit strata wrote from `strata repo serve`.
func TestOstreePullsFromStrataServe(t *testing.T) {
	peer(t)
	t.Parallel()
	src, err := awkwardSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode    string
		summary bool
	}{
		{"archive", false}, {"bare-user", true}, {"bare", true},
	} {
		t.Run(fmt.Sprintf("%s/summary=%v", tt.mode, tt.summary), func(t *testing.T) {
			t.Parallel()
			source := strataSource(t, tt.summary)
			url := serveStrata(t, source.repo)
			client := filepath.Join(t.TempDir(), "client")
			mustOstree(t, "--repo="+client, "init", "--mode="+tt.mode)
			mustOstree(t, "--repo="+client, "remote", "add", "--no-gpg-verify", "origin", url)
			mustOstree(t, "--repo="+client, "pull", "origin", pullRef)
			if got := revParse(t, client, "origin:"+pullRef); got != source.commit {
				t.Errorf("after ostree pull, origin:%s = %s, want %s", pullRef, got, source.commit)
			}
			mustOstree(t, "--repo="+client, "fsck")
			dest := filepath.Join(t.TempDir(), "co")
			mustOstree(t, "--repo="+client, "checkout", "origin:"+pullRef, dest)
			compareCheckout(t, "ostree checkout of the pulled commit", src.forMode(tt.mode), dest)
		})
	}
}

// TestStrataPullsFromOstreeRepo: strata pulls a commit ostree wrote, published by Python's
// http.server, with and without a summary.
func TestStrataPullsFromOstreeRepo(t *testing.T) {
	peer(t)
	t.Parallel()
	src, err := awkwardSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		mode    string
		summary bool
	}{
		{"archive", true}, {"bare-user", false}, {"bare", true},
	} {
		t.Run(fmt.Sprintf("%s/summary=%v", tt.mode, tt.summary), func(t *testing.T) {
			t.Parallel()
			source := ostreeSource(t, tt.summary)
			url := servePython(t, source.repo)
			client := filepath.Join(t.TempDir(), "client")
			mustStrata(t, "repo", "init", "--repo", client, "--mode", tt.mode)
			mustStrata(t, "repo", "pull", "--repo", client, "--url", url, "--no-verify", pullRef)
			if got := revParse(t, client, pullRef); got != source.commit {
				t.Errorf("after strata repo pull, %s = %s, want %s", pullRef, got, source.commit)
			}
			mustStrata(t, "repo", "fsck", "--repo", client)
			mustOstree(t, "--repo="+client, "fsck")
			dest := filepath.Join(t.TempDir(), "co")
			mustStrata(t, "repo", "checkout", "--repo", client, pullRef, dest)
			compareCheckout(t, "strata repo checkout of the pulled commit", src.forMode(tt.mode), dest)
		})
	}
}

// TestOstreePullsFromStrataMirror: strata mirrors an ostree-written repository into an archive
// repository, summarizes and serves it; ostree pulls from the mirror what it would have pulled
// from the origin.
func TestOstreePullsFromStrataMirror(t *testing.T) {
	peer(t)
	t.Parallel()
	src, err := awkwardSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	origin := ostreeSource(t, true)
	mirror := filepath.Join(t.TempDir(), "mirror")
	mustStrata(t, "repo", "init", "--repo", mirror, "--mode", "archive")
	mustStrata(t, "repo", "pull", "--repo", mirror, "--url", servePython(t, origin.repo), "--no-verify", pullRef)
	mustStrata(t, "repo", "summary", "--repo", mirror)
	view := mustOstree(t, "--repo="+mirror, "summary", "--view")
	if !strings.Contains(view, pullRef) || !strings.Contains(view, origin.commit) {
		t.Errorf("ostree summary --view of the mirror lacks %s at %s:\n%s", pullRef, origin.commit, view)
	}
	url := serveStrata(t, mirror)
	for _, mode := range []string{"bare-user"} {
		t.Run(mode, func(t *testing.T) {
			client := filepath.Join(t.TempDir(), "client")
			mustOstree(t, "--repo="+client, "init", "--mode="+mode)
			mustOstree(t, "--repo="+client, "remote", "add", "--no-gpg-verify", "mirror", url)
			mustOstree(t, "--repo="+client, "pull", "mirror", pullRef)
			if got := revParse(t, client, "mirror:"+pullRef); got != origin.commit {
				t.Errorf("after ostree pull from the mirror, mirror:%s = %s, want %s", pullRef, got, origin.commit)
			}
			mustOstree(t, "--repo="+client, "fsck")
			dest := filepath.Join(t.TempDir(), "co")
			mustOstree(t, "--repo="+client, "checkout", "mirror:"+pullRef, dest)
			compareCheckout(t, "ostree checkout of the commit pulled from the mirror", src.forMode(mode), dest)
		})
	}
}

// TestStrataPullsVectorRepo pulls the test vectors' archive repository (C2 with parent C1, a
// summary with a dummy signature, static deltas strata ignores) with --depth 1, and checks the
// commits (vectorC1, vectorC2 of vectors_test.go) and that every pulled metadata object equals
// the vector's bytes.
func TestStrataPullsVectorRepo(t *testing.T) {
	peer(t)
	t.Parallel()
	vectors := testutil.Vectors(t)
	origin := filepath.Join(vectors, "repo-archive")
	url := servePython(t, origin)
	for _, mode := range []string{"archive", "bare-user"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			client := filepath.Join(t.TempDir(), "client")
			mustStrata(t, "repo", "init", "--repo", client, "--mode", mode)
			mustStrata(t, "repo", "pull", "--repo", client, "--url", url, "--no-verify", "--depth", "1", pullRef)
			if got := revParse(t, client, pullRef); got != vectorC2 {
				t.Errorf("after strata repo pull, %s = %s, want C2 %s", pullRef, got, vectorC2)
			}
			if got := revParse(t, client, pullRef+"^"); got != vectorC1 {
				t.Errorf("after strata repo pull --depth 1, the parent of %s = %s, want C1 %s", pullRef, got, vectorC1)
			}
			mustStrata(t, "repo", "fsck", "--repo", client)
			mustOstree(t, "--repo="+client, "fsck")
			for _, c := range []string{vectorC1, vectorC2} {
				mustOstree(t, "--repo="+client, "show", c)
			}
			compareMetadataObjects(t, origin, client)
		})
	}
}

// compareMetadataObjects requires every metadata object (commit, dirtree, dirmeta) of the
// origin repository to be in the client with the same bytes, and no other.
func compareMetadataObjects(t *testing.T, origin, client string) {
	t.Helper()
	list := func(repo string) map[string]string {
		objs := map[string]string{}
		for _, ext := range []string{"commit", "dirtree", "dirmeta"} {
			paths, err := filepath.Glob(filepath.Join(repo, "objects", "*", "*."+ext))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range paths {
				b, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				rel, _ := filepath.Rel(filepath.Join(repo, "objects"), p)
				objs[rel] = string(b)
			}
		}
		return objs
	}
	want, got := list(origin), list(client)
	for name, b := range want {
		switch g, ok := got[name]; {
		case !ok:
			t.Errorf("pulled repository lacks %s", name)
		case g != b:
			t.Errorf("pulled %s differs from the origin's bytes", name)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("pulled repository has %s, which the origin has not", name)
		}
	}
}
