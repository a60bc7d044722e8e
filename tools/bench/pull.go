package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// The pull ops: a client repository (in the fixture's mode) pulls the corpus commit over HTTP
// on loopback from an archive repository that both tools share (pullSource); with added
// latency through an in-process TCP proxy (Proxy, proxy.go) that delays and counts the bytes
// on the wire, without it straight from the server (preparePull says why and how the bytes
// are counted then). The measured command is the pull alone: `strata repo pull --url URL
// --no-verify bench` or `ostree pull origin bench` (remote added with --no-gpg-verify during
// setup). Both tools pull the same objects from the same server, so wall time and bytes
// compare directly.
//
// Servers: "http" is Python's http.server (threaded, HTTP/1.1 keep-alive, quiet), a plain
// static web server that belongs to neither tool; "serve" is `strata repo serve`. The
// incremental ops first pull the corpus commit (unmeasured, without the proxy), then the
// source's ref moves to a second commit in which one Debian package changed (pullUpdate) and
// the measured pull fetches the difference.
func init() {
	ops = append(ops,
		pullOp("pull", "http", 0, false),
		pullOp("pull-20ms", "http", 20*time.Millisecond, false),
		pullOp("pull-incr-20ms", "http", 20*time.Millisecond, true),
		pullOp("pull-serve", "serve", 0, false),
		pullOp("pull-serve-20ms", "serve", 20*time.Millisecond, false),
		pullOp("pull-incr-serve-20ms", "serve", 20*time.Millisecond, true),
	)
}

// pullRun is the state of a pull op's current run on one fixture, set up by prepare.
type pullRun struct {
	client string // the pulling repository
	url    string // the URL the measured pull uses (through the proxy when there is one)
	want   string // the commit the pull must end at
	proxy  *Proxy // the delaying proxy, nil for a zero-latency pull
	bytes  int64  // the bytes counted by countPull when there is no proxy
}

// pullRuns holds the current run of each fixture: ops run one at a time, so one entry per
// fixture is enough. Only the harness's goroutine touches it.
var pullRuns = map[*fixture]*pullRun{}

func pullOp(name, server string, rtt time.Duration, incremental bool) op {
	what := "pull the corpus commit into an empty repository"
	if incremental {
		what = "pull the next commit (one package changed) into a repository that has the corpus commit"
	}
	latency := "no added latency"
	if rtt > 0 {
		latency = fmt.Sprintf("%v round-trip time", rtt)
	}
	desc := fmt.Sprintf("%s, served by %s over loopback with %s; transferred counts bytes on the wire (both directions)",
		what, serverDesc(server), latency)
	return op{
		name: name,
		desc: desc,
		prepare: func(ctx context.Context, f *fixture) (func(), error) {
			return preparePull(ctx, f, server, rtt/2, incremental)
		},
		argv: func(f *fixture) []string {
			r := pullRuns[f]
			return pullArgv(f.cli, r.client, r.url)
		},
		result: func(f *fixture, _ string) (string, error) {
			r := pullRuns[f]
			got, err := pulledCommit(r.client)
			if err == nil && got != r.want {
				err = fmt.Errorf("the pull left the ref at %s, want %s", got, r.want)
			}
			return got, err
		},
		transferred: func(f *fixture) int64 {
			r := pullRuns[f]
			if r.proxy == nil {
				return r.bytes
			}
			up, down := r.proxy.Bytes()
			return up + down
		},
	}
}

func serverDesc(server string) string {
	if server == "serve" {
		return "`strata repo serve`"
	}
	return "Python's http.server"
}

// preparePull readies one measured pull: the shared source holds the wanted commit at
// benchBranch, a server runs (and a proxy, when the op adds latency), and a fresh client
// repository exists (holding the corpus commit already for an incremental pull).
//
// With no added latency the measured pull goes straight to the server: a proxy in the path
// doubles the loopback TCP work and takes CPU from whichever tool saturates the machine
// (0.7 s of a 4.6 s pull here). The bytes on the wire are then counted once per tool and op,
// by an identical pull through a counting proxy before the first measured run.
func preparePull(ctx context.Context, f *fixture, server string, oneWay time.Duration, incremental bool) (cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		delete(pullRuns, f)
	}
	defer func() {
		if err != nil {
			cleanup()
			cleanup = nil
		}
	}()
	if sc, ok := f.cli.(strataCLI); ok && sc.bin != "" {
		strataBinary = sc.bin
	}
	src, err := ensurePullSource(ctx, f, incremental)
	if err != nil {
		return nil, err
	}
	direct, stop, err := startServer(ctx, server, src.dir)
	if err != nil {
		return nil, err
	}
	undo = append(undo, stop)
	r := &pullRun{client: filepath.Join(f.dir, "pull-client"), url: direct + "/"}
	if oneWay == 0 {
		key := countKey{f: f, server: server, incremental: incremental}
		if _, ok := countedBytes[key]; !ok {
			n, err := countPull(ctx, f, src, direct, incremental)
			if err != nil {
				return nil, fmt.Errorf("counting the bytes of the pull: %w", err)
			}
			countedBytes[key] = n
		}
		r.bytes = countedBytes[key]
	} else {
		proxy, err := NewProxy(strings.TrimPrefix(direct, "http://"), oneWay)
		if err != nil {
			return nil, err
		}
		undo = append(undo, func() { proxy.Close() })
		r.url, r.proxy = "http://"+proxy.Addr+"/", proxy
	}
	pullRuns[f] = r
	restore, err := setupClient(ctx, f, src, r, direct, incremental)
	if restore != nil {
		undo = append(undo, restore)
	}
	if err != nil {
		return nil, err
	}
	if r.proxy != nil {
		r.proxy.Reset()
	}
	return cleanup, nil
}

// countKey names the pulls whose bytes countedBytes holds.
type countKey struct {
	f           *fixture
	server      string
	incremental bool
}

// countedBytes holds the bytes on the wire of the zero-latency pulls, counted once per tool
// and op by countPull.
var countedBytes = map[countKey]int64{}

// countPull makes the pull a measured run makes, through a counting proxy without delay, and
// returns the bytes on the wire both ways.
func countPull(ctx context.Context, f *fixture, src *pullSource, direct string, incremental bool) (int64, error) {
	proxy, err := NewProxy(strings.TrimPrefix(direct, "http://"), 0)
	if err != nil {
		return 0, err
	}
	defer proxy.Close()
	c := &pullRun{client: filepath.Join(f.dir, "pull-count"), url: "http://" + proxy.Addr + "/"}
	defer removeAll(c.client)
	restore, err := setupClient(ctx, f, src, c, direct, incremental)
	if restore != nil {
		defer restore()
	}
	if err != nil {
		return 0, err
	}
	proxy.Reset()
	if _, err := execute(ctx, f.dir, pullArgv(f.cli, c.client, c.url)); err != nil {
		return 0, err
	}
	if got, err := pulledCommit(c.client); err != nil || got != c.want {
		return 0, fmt.Errorf("the counting pull left the ref at %q (%v), want %s", got, err, c.want)
	}
	up, down := proxy.Bytes()
	return up + down, nil
}

// setupClient creates r.client afresh with the source's ref at its base commit; for an
// incremental pull it pulls that commit straight from the server, then moves the source's
// ref to the next commit, which r.want becomes. restore, when not nil, moves the ref back.
func setupClient(ctx context.Context, f *fixture, src *pullSource, r *pullRun, direct string, incremental bool) (restore func(), err error) {
	r.want = src.base
	if err := src.setRef(src.base); err != nil {
		return nil, err
	}
	if err := removeAll(r.client); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	if _, err := execute(ctx, f.dir, f.cli.initRepo(r.client, f.mode)); err != nil {
		return nil, err
	}
	if oc, ok := f.cli.(ostreeCLI); ok {
		add := []string{oc.bin, "--repo=" + r.client, "remote", "add", "--no-gpg-verify", "origin", r.url}
		if _, err := execute(ctx, f.dir, add); err != nil {
			return nil, err
		}
	}
	if !incremental {
		return nil, nil
	}
	// The first pull goes straight to the server: it is setup, not measured.
	if _, err := execute(ctx, f.dir, pullArgv(f.cli, r.client, direct+"/")); err != nil {
		return nil, fmt.Errorf("pulling the corpus commit before the incremental pull: %w", err)
	}
	if got, err := pulledCommit(r.client); err != nil || got != src.base {
		return nil, fmt.Errorf("setup pull left the ref at %q (%v), want %s", got, err, src.base)
	}
	if err := src.setRef(src.next); err != nil {
		return nil, err
	}
	r.want = src.next
	return func() { _ = src.setRef(src.base) }, nil
}

// pullArgv is the measured pull command of a tool. ostree pulls from its remote "origin";
// --url overrides the remote's URL so that the same remote serves the setup and the
// measured pull.
func pullArgv(c cli, client, url string) []string {
	switch c := c.(type) {
	case strataCLI:
		return []string{c.bin, "repo", "pull", "--repo", client, "--url", url, "--no-verify", benchBranch}
	case ostreeCLI:
		return []string{c.bin, "--repo=" + client, "pull", "--url=" + url, "origin", benchBranch}
	}
	panic(fmt.Sprintf("internal error: no pull command for %T", c))
}

// pulledCommit reads the client's ref: refs/heads/bench when strata pulled by URL,
// refs/remotes/origin/bench when ostree pulled from its remote.
func pulledCommit(client string) (string, error) {
	for _, p := range []string{"refs/heads/" + benchBranch, "refs/remotes/origin/" + benchBranch} {
		b, err := os.ReadFile(filepath.Join(client, p))
		if err == nil {
			return parseChecksum(string(b))
		}
		if !os.IsNotExist(err) {
			return "", err
		}
	}
	return "", fmt.Errorf("the client repository %s has no ref %s", client, benchBranch)
}

// fmtTransferred formats a byte count of the transferred column: small pulls are KiB.
func fmtTransferred(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmtBytes(n)
}
