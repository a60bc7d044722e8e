package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// pullSource is the archive repository the pull ops serve, one per corpus, shared by both
// tools: base is the corpus commit; next, made on demand for the incremental ops, is a child
// of base in which one package changed.
type pullSource struct {
	dir    string // the archive repository
	corpus string // the corpus tree
	base   string
	next   string
}

// pullSources holds the source of each corpus by its directory, built by the first fixture
// that needs it with that fixture's tool (an archive repository serves the same protocol whoever
// wrote it).
var pullSources = map[string]*pullSource{}

// pullPackage is the Debian package whose files pullUpdate changes: an OpenSSH client security
// update is a typical small OS update (18 files, 5.4 MiB in the bookworm corpus).
const pullPackage = "openssh-client"

func ensurePullSource(ctx context.Context, f *fixture, withNext bool) (*pullSource, error) {
	// The fixture lives in WORK/CORPUS/MODE/TOOL; the source goes beside the modes.
	dir := filepath.Join(filepath.Dir(filepath.Dir(f.dir)), "pull-source", "repo")
	s := pullSources[dir]
	if s == nil {
		s = &pullSource{dir: dir, corpus: f.tree}
		if err := removeAll(filepath.Dir(s.dir)); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(filepath.Dir(s.dir), 0o755); err != nil {
			return nil, err
		}
		if _, err := execute(ctx, filepath.Dir(s.dir), f.cli.initRepo(s.dir, "archive")); err != nil {
			return nil, fmt.Errorf("creating the pull source: %w", err)
		}
		r, err := execute(ctx, filepath.Dir(s.dir), f.cli.commit(s.dir, benchBranch, f.tree))
		if err != nil {
			return nil, fmt.Errorf("committing the corpus into the pull source: %w", err)
		}
		if s.base, err = parseChecksum(r.stdout); err != nil {
			return nil, err
		}
		pullSources[dir] = s
	}
	if withNext && s.next == "" {
		if err := s.makeNext(ctx, f.cli); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// makeNext commits the corpus with one package changed on top of base.
func (s *pullSource) makeNext(ctx context.Context, c cli) error {
	tree := filepath.Join(filepath.Dir(s.dir), "tree-next")
	if err := removeAll(tree); err != nil {
		return err
	}
	// A hardlinked copy: pullUpdate replaces the files it changes instead of writing to them.
	if _, err := execute(ctx, filepath.Dir(s.dir), []string{"cp", "-al", s.corpus, tree}); err != nil {
		return fmt.Errorf("copying the corpus: %w", err)
	}
	if _, err := pullUpdate(tree, pullPackage); err != nil {
		return err
	}
	if err := s.setRef(s.base); err != nil {
		return err
	}
	r, err := execute(ctx, filepath.Dir(s.dir), c.commit(s.dir, benchBranch, tree))
	if err != nil {
		return fmt.Errorf("committing the updated corpus into the pull source: %w", err)
	}
	if s.next, err = parseChecksum(r.stdout); err != nil {
		return err
	}
	if s.next == s.base {
		return fmt.Errorf("the updated corpus committed to the same commit %s", s.base)
	}
	return removeAll(tree)
}

// setRef points the source's benchBranch at commit. The source has no summary, so clients
// read refs/heads/bench (docs/formats/summary.md, the client step 1).
func (s *pullSource) setRef(commit string) error {
	if err := os.Remove(filepath.Join(s.dir, "summary")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return os.WriteFile(filepath.Join(s.dir, "refs", "heads", benchBranch), []byte(commit+"\n"), 0o644)
}

// pullUpdate changes the regular files of a Debian package in tree as an upgrade would (new
// content for each) and records it in dpkg's status file. A tree without that package (the
// synthetic corpus) gets the files of its first directory, in walk order, that holds regular
// files changed instead. Files are replaced, never written in place, so a hardlinked copy
// leaves the original alone. It returns the changed paths, relative to tree.
func pullUpdate(tree, pkg string) ([]string, error) {
	files, err := packageFiles(tree, pkg)
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		if files, err = firstDirFiles(tree); err != nil {
			return nil, err
		}
	} else if _, err := os.Lstat(filepath.Join(tree, "var/lib/dpkg/status")); err == nil {
		files = append(files, "var/lib/dpkg/status")
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no regular file to change in %s", tree)
	}
	for _, rel := range files {
		if err := replaceAppending(filepath.Join(tree, rel), "\n# updated for the incremental pull benchmark\n"); err != nil {
			return nil, err
		}
	}
	return files, nil
}

// packageFiles lists the regular files of pkg from dpkg's file list in tree, if it has one.
func packageFiles(tree, pkg string) ([]string, error) {
	info := filepath.Join(tree, "var/lib/dpkg/info")
	var list []byte
	var err error
	for _, name := range []string{pkg + ".list", pkg + ":amd64.list"} {
		if list, err = os.ReadFile(filepath.Join(info, name)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil
	}
	var files []string
	for _, l := range strings.Split(string(list), "\n") {
		rel := strings.TrimPrefix(strings.TrimSpace(l), "/")
		if rel == "" {
			continue
		}
		if fi, err := os.Lstat(filepath.Join(tree, rel)); err == nil && fi.Mode().IsRegular() {
			files = append(files, rel)
		}
	}
	return files, nil
}

func firstDirFiles(tree string) ([]string, error) {
	var files []string
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				rel, _ := filepath.Rel(tree, filepath.Join(p, e.Name()))
				files = append(files, rel)
			}
		}
		if len(files) > 0 {
			return fs.SkipAll
		}
		return nil
	})
	sort.Strings(files)
	return files, err
}

// replaceAppending replaces the file at p with a copy that has suffix appended, keeping its
// mode, owner and extended attributes (cp --preserve=all).
func replaceAppending(p, suffix string) error {
	tmp := p + ".bench-tmp"
	if out, err := exec.Command("cp", "--preserve=all", p, tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("copying %s: %v: %s", p, err, strings.TrimSpace(string(out)))
	}
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(suffix)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("changing %s: %w", p, err)
	}
	return os.Rename(tmp, p)
}

// pythonServer is Python's http.server with two changes that any production static server
// has: HTTP/1.1 keep-alive, and a listen backlog of 128 instead of socketserver's 5 (which
// drops connections, and costs a one-second SYN retransmission, as soon as a client opens
// more than a few at once). It prints its port.
const pythonServer = `import functools, http.server, sys
class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args):
        pass
http.server.ThreadingHTTPServer.request_queue_size = 128
srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
print("http://127.0.0.1:%d" % srv.server_address[1], flush=True)
srv.serve_forever()
`

var urlRE = regexp.MustCompile(`http://[0-9.]+:[0-9]+`)

// startServer runs a server for the repository dir and returns its base URL (no trailing
// slash) once it answers, and a function that stops it.
func startServer(ctx context.Context, server, dir string) (string, func(), error) {
	var argv []string
	switch server {
	case "http":
		argv = []string{"/usr/bin/python3", "-c", pythonServer, dir}
	case "serve":
		bin, err := strataBin(ctx)
		if err != nil {
			return "", nil, err
		}
		argv = []string{bin, "repo", "serve", "--repo", dir, "--listen", "127.0.0.1:0"}
	default:
		return "", nil, fmt.Errorf("internal error: unknown server %q", server)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("starting %s: %w", argv[0], err)
	}
	stop := func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if u := urlRE.FindString(sc.Text()); u != "" {
				found <- u
				break
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		close(found)
	}()
	var url string
	select {
	case url = <-found:
	case <-ctx.Done():
	case <-time.After(30 * time.Second):
	}
	if url == "" {
		stop()
		return "", nil, fmt.Errorf("%s printed no listening URL", strings.Join(argv[:min(len(argv), 3)], " "))
	}
	if err := waitHTTP(ctx, url+"/config"); err != nil {
		stop()
		return "", nil, err
	}
	return url, stop, nil
}

// waitHTTP polls url until it answers 200, for up to 30 seconds.
func waitHTTP(ctx context.Context, url string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("status %s", resp.Status)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("server at %s does not answer: %w", url, err)
		case <-tick.C:
		}
	}
}

// strataBinary is the strata binary the "serve" server runs: the one the strata fixture
// uses, else bin/strata (built when stale), so that an ostree-only run can still use it.
var strataBinary string

func strataBin(ctx context.Context) (string, error) {
	if strataBinary != "" {
		return strataBinary, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	bin, err := buildStrata(ctx, root, io.Discard)
	if err != nil {
		return "", fmt.Errorf("strata repo serve: %w", err)
	}
	strataBinary = bin
	return bin, nil
}
