//go:build peer

package pull

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/delta"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// delayProxy forwards TCP connections to a target and holds each chunk
// for a one-way delay in each direction, so that loopback gets a round
// trip time of twice that (this kernel has no sch_netem for tc's netem).
// It counts the bytes sent to the client.
type delayProxy struct {
	ln    net.Listener
	delay atomic.Int64 // one way, nanoseconds
	down  atomic.Int64
}

func newDelayProxy(b *testing.B, target string) *delayProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	p := &delayProxy{ln: ln}
	b.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c, target)
		}
	}()
	return p
}

func (p *delayProxy) URL() string { return "http://" + p.ln.Addr().String() + "/" }

func (p *delayProxy) serve(c net.Conn, target string) {
	defer c.Close()
	// Connection setup costs a round trip, as a TCP handshake does.
	time.Sleep(2 * time.Duration(p.delay.Load()))
	t, err := net.Dial("tcp", target)
	if err != nil {
		return
	}
	defer t.Close()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); p.pipe(t, c, nil) }()
	go func() { defer wg.Done(); p.pipe(c, t, &p.down) }()
	wg.Wait()
}

// pipe copies src to dst, each chunk delivered one delay after it was read.
func (p *delayProxy) pipe(dst, src net.Conn, count *atomic.Int64) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			buf := make([]byte, 64<<10)
			n, err := src.Read(buf)
			if n > 0 {
				ch <- chunk{time.Now().Add(time.Duration(p.delay.Load())), buf[:n]}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
		if count != nil {
			count.Add(int64(len(c.b)))
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
	for range ch {
	}
}

func run(b *testing.B, name string, args ...string) time.Duration {
	b.Helper()
	start := time.Now()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return time.Since(start)
}

// measured runs a command under GNU time and returns its wall time and
// peak RSS: time forks it, so the peak is the command's own (a child that
// Go starts directly reports at least its parent's).
func measured(b *testing.B, timeBin, name string, args ...string) (time.Duration, int64) {
	b.Helper()
	out, err := exec.Command(timeBin, append([]string{"-f", "TIME %e %M", name}, args...)...).CombinedOutput()
	if err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	m := regexp.MustCompile(`TIME ([0-9.]+) ([0-9]+)`).FindStringSubmatch(string(out))
	if m == nil {
		b.Fatalf("no timing in the output of %s:\n%s", name, out)
	}
	secs, _ := strconv.ParseFloat(m[1], 64)
	kib, _ := strconv.ParseInt(m[2], 10, 64)
	return time.Duration(secs * float64(time.Second)), kib << 10
}

func deltaSize(b *testing.B, r *repo.Repo, n delta.Name) uint64 {
	b.Helper()
	sb, err := delta.Read(r, n)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := delta.ReadSuperblockFile(r, n)
	return uint64(len(raw)) + sb.DownloadSize()
}

// dpkgVersions reads the installed packages' versions of a root
// filesystem.
func dpkgVersions(b *testing.B, root string) map[string]string {
	f, err := os.Open(filepath.Join(root, "var/lib/dpkg/status"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	out := map[string]string{}
	var pkg string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Package: "); ok {
			pkg = v
		} else if v, ok := strings.CutPrefix(sc.Text(), "Version: "); ok {
			out[pkg] = v
		}
	}
	return out
}

// fetchDebs downloads (once, into cache) the packages of the benchmark's
// update: the two newest Linux 6.1 kernel images of the configured
// mirror, and for a few packages of the corpus a version other than the
// corpus's (the "old" release has those).
func fetchDebs(b *testing.B, cache, corpus string) (oldKernel, newKernel string, old []string) {
	if err := os.MkdirAll(cache, 0o755); err != nil {
		b.Fatal(err)
	}
	out, err := exec.Command("apt-cache", "search", "--names-only", `^linux-image-6\.1\.0-[0-9]+-amd64$`).Output()
	if err != nil {
		b.Fatalf("apt-cache search: %v", err)
	}
	var abis []int
	for _, l := range strings.Split(string(out), "\n") {
		if m := regexp.MustCompile(`^linux-image-6\.1\.0-([0-9]+)-amd64 `).FindStringSubmatch(l); m != nil {
			n, _ := strconv.Atoi(m[1])
			abis = append(abis, n)
		}
	}
	slices.Sort(abis)
	if len(abis) < 2 {
		b.Fatalf("the mirror offers %d linux-image-6.1.0-N-amd64 packages, want two", len(abis))
	}
	kernel := func(abi int) string { return fmt.Sprintf("linux-image-6.1.0-%d-amd64", abi) }
	want := []string{kernel(abis[len(abis)-2]), kernel(abis[len(abis)-1])}
	installed := dpkgVersions(b, corpus)
	for _, p := range []string{"openssh-client", "openssh-server", "git", "libssl3", "curl", "libcurl4"} {
		out, err := exec.Command("apt-cache", "madison", p).Output()
		if err != nil {
			b.Fatalf("apt-cache madison %s: %v", p, err)
		}
		for _, l := range strings.Split(string(out), "\n") {
			f := strings.Split(l, "|")
			if len(f) < 2 {
				continue
			}
			if v := strings.TrimSpace(f[1]); v != installed[p] && installed[p] != "" {
				want = append(want, p+"="+v)
				break
			}
		}
	}
	var files []string
	for _, w := range want {
		name, ver, _ := strings.Cut(w, "=")
		glob, _ := filepath.Glob(filepath.Join(cache, name+"_*.deb"))
		if ver != "" {
			glob, _ = filepath.Glob(filepath.Join(cache, name+"_"+strings.ReplaceAll(ver, ":", "%3a")+"_*.deb"))
		}
		if len(glob) == 0 {
			cmd := exec.Command("apt-get", "download", w)
			cmd.Dir = cache
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("apt-get download %s: %v\n%s", w, err, out)
			}
			glob, _ = filepath.Glob(filepath.Join(cache, name+"_*.deb"))
		}
		if len(glob) == 0 {
			b.Fatalf("no .deb of %s in %s", w, cache)
		}
		files = append(files, glob[0])
	}
	return files[0], files[1], files[2:]
}

// addKernel unpacks a kernel image package into tree the way an OSTree
// system holds a kernel: its modules, and vmlinuz beside them, under
// usr/lib/modules/VERSION.
func addKernel(b *testing.B, tree, deb string) {
	x := b.TempDir()
	run(b, "dpkg-deb", "-x", deb, x)
	mods, _ := filepath.Glob(filepath.Join(x, "lib/modules/*"))
	if len(mods) != 1 {
		b.Fatalf("%s has modules for %d kernels", deb, len(mods))
	}
	ver := filepath.Base(mods[0])
	dst := filepath.Join(tree, "usr/lib/modules", ver)
	os.MkdirAll(filepath.Dir(dst), 0o755)
	run(b, "cp", "-a", mods[0], dst)
	run(b, "cp", "-a", filepath.Join(x, "boot", "vmlinuz-"+ver), filepath.Join(dst, "vmlinuz"))
}

// addPackage unpacks a package's /usr and /etc over tree.
func addPackage(b *testing.B, tree, deb string) {
	x := b.TempDir()
	run(b, "dpkg-deb", "-x", deb, x)
	for _, d := range []string{"usr", "etc"} {
		if _, err := os.Stat(filepath.Join(x, d)); err == nil {
			run(b, "cp", "-a", filepath.Join(x, d), tree+"/")
		}
	}
}

// BenchmarkDeltaVsOstree compares strata and ostree 2022.7 on one update of
// the Debian corpus (scripts/corpus): the old release is the corpus with
// an older version of a few packages (OpenSSH, git, OpenSSL, curl) and one
// Linux kernel (modules and vmlinuz under usr/lib/modules), the new one is
// the corpus with the next kernel. Both tools generate the delta from the
// same archive repository with their defaults; clients holding the old
// commit pull it over loopback HTTP at 20 ms round trip time. Reported:
// delta size, generation time, pull time and peak RSS of the pulling
// process, bytes on the wire, and the bytes of an object pull.
//
//	go test -tags peer -run '^$' -bench DeltaVsOstree -benchtime 1x -timeout 60m ./internal/pull/
//
// STRATA_BENCH_KEEP=DIR keeps its trees and repositories in DIR.
func BenchmarkDeltaVsOstree(b *testing.B) {
	ostreeBin := testutil.Ostree(b)
	timeBin := testutil.RequireTool(b, "/usr/bin/time", "time")
	testutil.RequireTool(b, "dpkg-deb", "dpkg")
	testutil.RequireTool(b, "apt-get", "apt")
	root := testutil.RepoRoot(b)
	corpus := filepath.Join(root, ".cache/corpus/debian")
	if _, err := os.Stat(filepath.Join(corpus, "usr")); err != nil {
		b.Fatalf("no Debian corpus in %s (build it with scripts/corpus debian): %v", corpus, err)
	}
	oldKernel, newKernel, oldPkgs := fetchDebs(b, filepath.Join(root, ".cache/delta-bench"), corpus)
	tmp := b.TempDir()
	if keep := os.Getenv("STRATA_BENCH_KEEP"); keep != "" {
		// The repositories stay in keep, for profiling pulls of the same delta again.
		tmp = keep
		if err := os.MkdirAll(tmp, 0o755); err != nil {
			b.Fatal(err)
		}
	}
	strataBin := filepath.Join(tmp, "strata")
	build := exec.Command("go", "build", "-o", strataBin, "./cmd/strata")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		b.Fatalf("building strata: %v\n%s", err, out)
	}

	t1, t2 := filepath.Join(tmp, "t1"), filepath.Join(tmp, "t2")
	run(b, "cp", "-a", corpus, t1)
	run(b, "cp", "-a", corpus, t2)
	for _, p := range oldPkgs {
		addPackage(b, t1, p)
	}
	addKernel(b, t1, oldKernel)
	addKernel(b, t2, newKernel)

	ctx := context.Background()
	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeArchive)
	if err != nil {
		b.Fatal(err)
	}
	commit := func(dir string) ostree.Checksum {
		c, _, err := repo.CommitTree(ctx, src, repo.DirSource(dir), repo.CommitOptions{Branch: "os", Subject: filepath.Base(dir)})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	c1, c2 := commit(t1), commit(t2)
	os.RemoveAll(t1)
	os.RemoveAll(t2)
	// The clients start from the old release.
	if err := src.SetRef("", "os", c1); err != nil {
		b.Fatal(err)
	}
	publishDeltas(b, src)
	run(b, "cp", "-al", src.Path(), filepath.Join(tmp, "osrc"))
	osrc, err := repo.Open(filepath.Join(tmp, "osrc"))
	if err != nil {
		b.Fatal(err)
	}
	ss := httptest.NewServer(http.FileServer(http.Dir(src.Path())))
	defer ss.Close()
	os_ := httptest.NewServer(http.FileServer(http.Dir(osrc.Path())))
	defer os_.Close()
	sp, op := newDelayProxy(b, ss.Listener.Addr().String()), newDelayProxy(b, os_.Listener.Addr().String())

	sc, oc, objc := filepath.Join(tmp, "sc"), filepath.Join(tmp, "oc"), filepath.Join(tmp, "objc")
	run(b, strataBin, "repo", "init", "--repo", sc, "--mode", "bare-user")
	run(b, strataBin, "repo", "pull", "--repo", sc, "--url", sp.URL(), "--no-verify", "os")
	run(b, "cp", "-a", sc, objc)
	run(b, ostreeBin, "--repo="+oc, "init", "--mode=bare-user")
	run(b, ostreeBin, "--repo="+oc, "remote", "add", "--no-gpg-verify", "o", op.URL())
	run(b, ostreeBin, "--repo="+oc, "pull", "o", "os")

	name := delta.Name{From: c1, To: c2}
	b.ResetTimer()
	start := time.Now()
	if _, err := delta.Generate(ctx, src, c1, c2, delta.Options{}); err != nil {
		b.Fatal(err)
	}
	strataGen := time.Since(start)
	ostreeGen := run(b, ostreeBin, "--repo="+osrc.Path(), "static-delta", "generate", "--from="+c1.String(), "--to="+c2.String())
	b.StopTimer()
	strataSize, ostreeSize := deltaSize(b, src, name), deltaSize(b, osrc, name)
	if err := src.SetRef("", "os", c2); err != nil {
		b.Fatal(err)
	}
	publishDeltas(b, src)
	if err := osrc.SetRef("", "os", c2); err != nil {
		b.Fatal(err)
	}
	run(b, ostreeBin, "--repo="+osrc.Path(), "summary", "-u")

	sp.delay.Store(int64(10 * time.Millisecond))
	op.delay.Store(int64(10 * time.Millisecond))
	sp.down.Store(0)
	strataPull, strataRSS := measured(b, timeBin, strataBin, "repo", "pull", "--repo", sc, "--url", sp.URL(), "--no-verify", "--require-static-deltas", "os")
	strataBytes := sp.down.Load()
	op.down.Store(0)
	ostreePull, ostreeRSS := measured(b, timeBin, ostreeBin, "--repo="+oc, "pull", "--require-static-deltas", "o", "os")
	ostreeBytes := op.down.Load()
	sp.down.Store(0)
	objectPull, _ := measured(b, timeBin, strataBin, "repo", "pull", "--repo", objc, "--url", sp.URL(), "--no-verify", "--disable-static-deltas", "os")
	objectBytes := sp.down.Load()
	for _, c := range []string{sc, objc} {
		run(b, strataBin, "repo", "fsck", "--repo", c)
	}
	run(b, ostreeBin, "--repo="+oc, "fsck")

	b.ReportMetric(float64(strataSize), "strata-delta-bytes")
	b.ReportMetric(float64(ostreeSize), "ostree-delta-bytes")
	b.ReportMetric(strataGen.Seconds(), "strata-generate-s")
	b.ReportMetric(ostreeGen.Seconds(), "ostree-generate-s")
	b.ReportMetric(strataPull.Seconds(), "strata-pull-s")
	b.ReportMetric(ostreePull.Seconds(), "ostree-pull-s")
	b.ReportMetric(float64(strataRSS>>20), "strata-pull-MiB")
	b.ReportMetric(float64(ostreeRSS>>20), "ostree-pull-MiB")
	b.ReportMetric(float64(strataBytes), "strata-pull-bytes")
	b.ReportMetric(float64(ostreeBytes), "ostree-pull-bytes")
	b.ReportMetric(objectPull.Seconds(), "object-pull-s")
	b.ReportMetric(float64(objectBytes), "object-pull-bytes")
}
