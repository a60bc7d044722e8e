//go:build peer

package sysext

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
)

// BenchmarkBuildVsTools builds one extension from the same directory
// (the Debian corpus's /usr/share, built by scripts/corpus: about 9,600
// files and 180 MB) with strata and with erofs-utils' and squashfs-tools'
// builders, one after the other in the same run: strata's EROFS against
// mkfs.erofs (both uncompressed) and against mksquashfs uncompressed
// (-noI -noD -noF -noX) and gzip-compressed, each on one processor and on
// all. It reports seconds and image bytes of each and the ratios
// tool/strata (above 1: strata is faster). make bench runs it once
// (-benchtime 1x); docs/benchmarks.md records it.
func BenchmarkBuildVsTools(b *testing.B) {
	mkfsErofs := testutil.RequireTool(b, "mkfs.erofs", "erofs-utils")
	mksquashfs := testutil.RequireTool(b, "mksquashfs", "squashfs-tools")
	corpus := filepath.Join(testutil.RepoRoot(b), ".cache/corpus/debian/usr/share")
	if _, err := os.Stat(corpus); err != nil {
		b.Fatalf("the Debian corpus is missing (%v): build it with scripts/corpus debian", err)
	}
	tmp := b.TempDir()
	dir := filepath.Join(tmp, "ext")
	if err := os.MkdirAll(filepath.Join(dir, "usr"), 0o755); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("cp", "-a", corpus, filepath.Join(dir, "usr/share")).CombinedOutput(); err != nil {
		b.Fatalf("copying the corpus: %v: %s", err, out)
	}
	// Everything the tools read comes from the page cache, as for strata.
	if out, err := exec.Command("tar", "-cf", "/dev/null", "-C", dir, ".").CombinedOutput(); err != nil {
		b.Fatalf("warming the page cache: %v: %s", err, out)
	}
	timed := func(name string, fn func(out string) error) (time.Duration, int64) {
		out := filepath.Join(tmp, name, "bench.raw")
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := fn(out); err != nil {
			b.Fatalf("%s: %v", name, err)
		}
		d := time.Since(start)
		st, err := os.Stat(out)
		if err != nil {
			b.Fatal(err)
		}
		os.Remove(out)
		return d, st.Size()
	}
	tool := func(argv ...string) func(string) error {
		return func(out string) error {
			a := append([]string(nil), argv...)
			for i := range a {
				if a[i] == "OUT" {
					a[i] = out
				}
			}
			if o, err := exec.Command(a[0], a[1:]...).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, o)
			}
			return nil
		}
	}
	sq := []string{mksquashfs, dir, "OUT", "-noappend", "-quiet", "-no-progress", "-all-root", "-mkfs-time", "0", "-all-time", "0"}
	b.ResetTimer()
	se, seSize := timed("strata", func(out string) error {
		_, err := Build(b.Context(), dir, BuildOptions{Name: "bench", Out: out, OSID: "debian", VersionID: "12", Time: time.Unix(0, 0)})
		return err
	})
	me, meSize := timed("mkfs.erofs", tool(mkfsErofs, "-T0", "--all-root", "OUT", dir))
	mu1, muSize := timed("mksquashfs-none-1", tool(append(sq, "-noI", "-noD", "-noF", "-noX", "-processors", "1")...))
	mun, _ := timed("mksquashfs-none", tool(append(sq, "-noI", "-noD", "-noF", "-noX")...))
	mg1, mgSize := timed("mksquashfs-gzip-1", tool(append(sq, "-comp", "gzip", "-processors", "1")...))
	mgn, _ := timed("mksquashfs-gzip", tool(append(sq, "-comp", "gzip")...))
	b.StopTimer()
	for _, m := range []struct {
		name string
		d    time.Duration
	}{{"strata-erofs", se}, {"mkfs.erofs", me}, {"mksquashfs-none-1cpu", mu1}, {"mksquashfs-none-allcpu", mun}, {"mksquashfs-gzip-1cpu", mg1}, {"mksquashfs-gzip-allcpu", mgn}} {
		b.ReportMetric(m.d.Seconds(), m.name+"-s")
		if m.d != se {
			b.ReportMetric(m.d.Seconds()/se.Seconds(), m.name+"/strata")
		}
	}
	b.ReportMetric(float64(seSize), "strata-erofs-bytes")
	b.ReportMetric(float64(meSize), "mkfs.erofs-bytes")
	b.ReportMetric(float64(muSize), "mksquashfs-none-bytes")
	b.ReportMetric(float64(mgSize), "mksquashfs-gzip-bytes")
}
