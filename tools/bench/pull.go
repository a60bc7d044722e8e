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
// on loopback from an archive repository that both tools share (pullSource), through an
// in-process TCP proxy (Proxy, proxy.go) that adds latency and counts the bytes
// on the wire. The measured command is the pull alone: `strata repo pull --url URL
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
	url    string // the URL the measured pull uses (through the proxy)
	want   string // the commit the pull must end at
	proxy  *Proxy
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
			up, down := pullRuns[f].proxy.Bytes()
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
// benchBranch, a server and a proxy run, and a fresh client repository exists (holding the
// corpus commit already for an incremental pull).
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
	if err := src.setRef(src.base); err != nil {
		return nil, err
	}
	direct, stop, err := startServer(ctx, server, src.dir)
	if err != nil {
		return nil, err
	}
	undo = append(undo, stop)
	proxy, err := NewProxy(strings.TrimPrefix(direct, "http://"), oneWay)
	if err != nil {
		return nil, err
	}
	undo = append(undo, func() { proxy.Close() })
	r := &pullRun{client: filepath.Join(f.dir, "pull-client"), url: "http://" + proxy.Addr + "/", want: src.base, proxy: proxy}
	pullRuns[f] = r
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
	if incremental {
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
		undo = append(undo, func() { _ = src.setRef(src.base) })
	}
	proxy.Reset()
	return cleanup, nil
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
