//go:build peer

package pull

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/delta"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// countingServer serves dir as static files and counts the body bytes sent.
type countingServer struct {
	*httptest.Server
	bytes atomic.Int64
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.n.Add(int64(n))
	return n, err
}

func serveCounting(dir string) *countingServer {
	s := &countingServer{}
	fs := http.FileServer(http.Dir(dir))
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.ServeHTTP(countingWriter{w, &s.bytes}, r)
	}))
	return s
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

func deltaDirSize(b *testing.B, r *repo.Repo, n delta.Name) (superblock, download uint64) {
	b.Helper()
	sb, err := delta.Read(r, n)
	if err != nil {
		b.Fatal(err)
	}
	raw, _ := delta.ReadSuperblockFile(r, n)
	return uint64(len(raw)), sb.DownloadSize()
}

// BenchmarkDeltaVsOstree compares, on the same commit pair, the delta strata
// and ostree 2022.7 generate (size, time) and a pull of it into a client
// that has the old commit (time, bytes), and the bytes of an object pull.
// The pair: about 60 MB of Debian's /usr/sbin and Perl, then the same with
// a few files changed, one added, and a 10 MB "kernel" rebuilt with
// scattered changes.
//
//	go test -tags peer -run '^$' -bench DeltaVsOstree -benchtime 1x ./internal/pull/
func BenchmarkDeltaVsOstree(b *testing.B) {
	ostreeBin := testutil.Ostree(b)
	tmp := b.TempDir()
	t1 := filepath.Join(tmp, "t1")
	for _, d := range []string{"/usr/sbin", "/usr/lib/x86_64-linux-gnu/perl", "/usr/share/perl"} {
		dst := filepath.Join(t1, strings.TrimPrefix(d, "/"))
		os.MkdirAll(filepath.Dir(dst), 0o755)
		run(b, "cp", "-a", d, dst)
	}
	kernel, err := os.ReadFile("/usr/lib/x86_64-linux-gnu/libz3.so.4")
	if err != nil {
		b.Fatal(err)
	}
	kernel = kernel[:min(len(kernel), 10<<20)]
	os.MkdirAll(filepath.Join(t1, "usr/lib/modules/6.1.0-1"), 0o755)
	os.WriteFile(filepath.Join(t1, "usr/lib/modules/6.1.0-1/vmlinuz"), kernel, 0o644)
	t2 := filepath.Join(tmp, "t2")
	run(b, "cp", "-a", t1, t2)
	for i := 0; i < len(kernel); i += 4096 {
		kernel[i]++
	}
	os.WriteFile(filepath.Join(t2, "usr/lib/modules/6.1.0-1/vmlinuz"), kernel, 0o644)
	perl, _ := filepath.Glob(filepath.Join(t2, "usr/share/perl/*/*.pm"))
	for _, p := range perl[:min(len(perl), 5)] {
		f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
		f.WriteString("\n# patched\n")
		f.Close()
	}
	os.WriteFile(filepath.Join(t2, "usr/sbin/new-tool"), []byte("#!/bin/sh\necho new\n"), 0o755)

	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeArchive)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	commit := func(dir string) ostree.Checksum {
		c, _, err := repo.CommitTree(ctx, src, repo.DirSource(dir), repo.CommitOptions{Branch: "os", Subject: filepath.Base(dir)})
		if err != nil {
			b.Fatal(err)
		}
		return c
	}
	c1, c2 := commit(t1), commit(t2)
	src.Close()
	run(b, "cp", "-a", filepath.Join(tmp, "src"), filepath.Join(tmp, "osrc"))
	if src, err = repo.Open(filepath.Join(tmp, "src")); err != nil {
		b.Fatal(err)
	}
	osrc, err := repo.Open(filepath.Join(tmp, "osrc"))
	if err != nil {
		b.Fatal(err)
	}
	name := delta.Name{From: c1, To: c2}

	b.ResetTimer()
	start := time.Now()
	if _, err := delta.Generate(ctx, src, c1, c2, delta.Options{}); err != nil {
		b.Fatal(err)
	}
	strataGen := time.Since(start)
	ostreeGen := run(b, ostreeBin, "--repo="+osrc.Path(), "static-delta", "generate", "--from="+c1.String(), "--to="+c2.String())
	b.StopTimer()
	sSuper, sDown := deltaDirSize(b, src, name)
	oSuper, oDown := deltaDirSize(b, osrc, name)
	publishDeltas(b, src)
	run(b, ostreeBin, "--repo="+osrc.Path(), "summary", "-u")

	// Clients holding c1, pulled by objects (unmeasured).
	client := func(url, dir string) *repo.Repo {
		r, err := repo.Init(dir, repo.ModeBareUser)
		if err != nil {
			b.Fatal(err)
		}
		o := pullOpts(url, "os@"+c1.String())
		o.DisableStaticDeltas = true
		if _, err := Pull(ctx, r, o); err != nil {
			b.Fatal(err)
		}
		return r
	}
	ss, os_ := serveCounting(src.Path()), serveCounting(osrc.Path())
	defer ss.Close()
	defer os_.Close()

	sc := client(ss.URL, filepath.Join(tmp, "sc"))
	ss.bytes.Store(0)
	start = time.Now()
	o := pullOpts(ss.URL, "os")
	o.RequireStaticDeltas = true
	if _, err := Pull(ctx, sc, o); err != nil {
		b.Fatal(err)
	}
	strataPull, strataBytes := time.Since(start), ss.bytes.Load()

	oc := filepath.Join(tmp, "oc")
	run(b, ostreeBin, "--repo="+oc, "init", "--mode=bare-user")
	run(b, ostreeBin, "--repo="+oc, "remote", "add", "--no-gpg-verify", "o", os_.URL)
	run(b, ostreeBin, "--repo="+oc, "pull", "--disable-static-deltas", "o", "os@"+c1.String())
	os_.bytes.Store(0)
	ostreePull := run(b, ostreeBin, "--repo="+oc, "pull", "--require-static-deltas", "o", "os")
	ostreeBytes := os_.bytes.Load()

	objc := client(ss.URL, filepath.Join(tmp, "objc"))
	ss.bytes.Store(0)
	o = pullOpts(ss.URL, "os")
	o.DisableStaticDeltas = true
	if _, err := Pull(ctx, objc, o); err != nil {
		b.Fatal(err)
	}
	objectBytes := ss.bytes.Load()

	b.ReportMetric(float64(sSuper+sDown), "strata-delta-bytes")
	b.ReportMetric(float64(oSuper+oDown), "ostree-delta-bytes")
	b.ReportMetric(strataGen.Seconds(), "strata-generate-s")
	b.ReportMetric(ostreeGen.Seconds(), "ostree-generate-s")
	b.ReportMetric(strataPull.Seconds(), "strata-pull-s")
	b.ReportMetric(ostreePull.Seconds(), "ostree-pull-s")
	b.ReportMetric(float64(strataBytes), "strata-pull-bytes")
	b.ReportMetric(float64(ostreeBytes), "ostree-pull-bytes")
	b.ReportMetric(float64(objectBytes), "object-pull-bytes")
}
