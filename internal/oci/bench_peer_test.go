//go:build peer

package oci

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/strata-os/strata/internal/oci/ocitest"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// corpusTree lays the Debian corpus (scripts/corpus debian) out as compose leaves a commit's
// tree: /etc in /usr/etc, the dpkg file lists in /usr/lib/sysimage/dpkg/info, /var empty.
// Files are hardlinks to the corpus: change one only by replacing it.
func corpusTree(b *testing.B) string {
	b.Helper()
	src := os.Getenv("STRATA_CORPUS_DEBIAN")
	if src == "" {
		src = filepath.Join(testutil.RepoRoot(b), ".cache", "corpus", "debian")
	}
	if _, err := os.Stat(filepath.Join(src, "var/lib/dpkg/info")); err != nil {
		b.Fatalf("the Debian corpus is not at %s (run scripts/corpus debian, or set STRATA_CORPUS_DEBIAN): %v", src, err)
	}
	dir := filepath.Join(b.TempDir(), "tree")
	cmds := [][]string{
		{"cp", "-al", src, dir},
		{"mv", filepath.Join(dir, "etc"), filepath.Join(dir, "usr/etc")},
		{"mkdir", "-p", filepath.Join(dir, "usr/lib/sysimage/dpkg")},
		{"mv", filepath.Join(dir, "var/lib/dpkg/info"), filepath.Join(dir, "usr/lib/sysimage/dpkg/info")},
	}
	for _, d := range []string{"var", "dev", "proc", "sys", "run", "tmp", "root", "home", "boot", "media", "mnt", "opt", "srv"} {
		cmds = append(cmds, []string{"rm", "-rf", filepath.Join(dir, d)})
	}
	cmds = append(cmds, []string{"mkdir", filepath.Join(dir, "var")})
	for _, c := range cmds {
		if out, err := exec.Command(c[0], c[1:]...).CombinedOutput(); err != nil {
			b.Fatalf("%v: %v\n%s", c, err, out)
		}
	}
	return dir
}

// changePackage replaces every regular file of a package with its content plus a line, as
// an update of that one package does, and returns the bytes of the files it changed.
func changePackage(b *testing.B, dir, pkg string) int64 {
	b.Helper()
	f, err := os.Open(filepath.Join(dir, "usr/lib/sysimage/dpkg/info", pkg+".list"))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var n int64
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		p := filepath.Join(dir, commitPath(sc.Text()))
		fi, err := os.Lstat(p)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		os.Remove(p) // a hardlink to the corpus: never written through
		if err := os.WriteFile(p, append(data, "updated\n"...), fi.Mode().Perm()); err != nil {
			b.Fatal(err)
		}
		n += int64(len(data))
	}
	return n
}

// measure is the wall time of a step and the CPU time it took in this process (strata) and
// in the child processes it waited for (skopeo; the registry keeps running, so its CPU
// time counts for neither).
type measure struct{ wall, self, children time.Duration }

func timed(b *testing.B, f func()) measure {
	b.Helper()
	s0, c0 := cpuTime()
	t := time.Now()
	f()
	wall := time.Since(t)
	s1, c1 := cpuTime()
	return measure{wall: wall, self: s1 - s0, children: c1 - c0}
}

// strata returns wall and CPU seconds of a strata step; skopeo those of a skopeo one.
func (m measure) strata() string {
	return fmt.Sprintf("%.1fs (CPU %.1fs)", m.wall.Seconds(), m.self.Seconds())
}
func (m measure) skopeo() string {
	return fmt.Sprintf("%.1fs (CPU %.1fs)", m.wall.Seconds(), m.children.Seconds())
}

func runCmd(b *testing.B, name string, args ...string) {
	b.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		b.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// BenchmarkOCIVsSkopeo compares, in one run on the Debian corpus and Debian's
// docker-registry on loopback: the first strata oci push of the commit (every layer built)
// against skopeo copy of the same files as one uncompressed layer (which skopeo
// compresses); a push of the image built before (strata from its blob cache) against
// skopeo copy of the same image from an oci-archive; strata oci pull into a bare-user
// repository against skopeo copy into containers-storage (overlay), which unpacks the same
// layers; and the bytes an update changing one package downloads from the registry against
// strata repo pull of the same change and against the whole image.
func BenchmarkOCIVsSkopeo(b *testing.B) {
	skopeo := testutil.RequireTool(b, "skopeo", "skopeo")
	ctx := context.Background()
	reg := ocitest.StartRegistry(b, false)
	ro := RegistryOptions{Insecure: true}
	work := b.TempDir()
	tree := corpusTree(b)
	src := newRepo(b, repo.ModeArchive)
	commitTree(b, src, tree, "1")

	// The first push of the commit: strata builds every layer (and keeps them in the
	// repository's blob cache).
	var first *PushResult
	strataFirst := timed(b, func() {
		var err error
		if first, err = Push(ctx, src, "os", "docker://"+reg.Host+"/strata/first:1", PushOptions{RegistryOptions: ro}); err != nil {
			b.Fatal(err)
		}
	})
	if first.LayersFromCache != 0 || first.LayersReused != 0 {
		b.Fatalf("the first push took layers from a cache: %+v", first)
	}
	// The same image, built before, to another registry repository: skopeo from the
	// archive strata wrote, strata from its blob cache (only the commit's layer is built).
	archive := filepath.Join(work, "image.tar")
	if _, err := Push(ctx, src, "os", "oci-archive:"+archive, PushOptions{}); err != nil {
		b.Fatal(err)
	}
	strataRef := "docker://" + reg.Host + "/strata/os:1"
	var pushed *PushResult
	strataPush := timed(b, func() {
		var err error
		if pushed, err = Push(ctx, src, "os", strataRef, PushOptions{RegistryOptions: ro}); err != nil {
			b.Fatal(err)
		}
	})
	if pushed.LayersFromCache != pushed.Layers-1 || pushed.ManifestDigest != first.ManifestDigest {
		b.Fatalf("the push of the image built before = %+v, want %d layers from the blob cache and digest %s", pushed, pushed.Layers-1, first.ManifestDigest)
	}
	skopeoPush := timed(b, func() {
		runCmd(b, skopeo, "copy", "--quiet", "--dest-tls-verify=false", "oci-archive:"+archive, "docker://"+reg.Host+"/skopeo/os:1")
	})

	// The image the goal was first measured with: the same files as one uncompressed layer,
	// which skopeo compresses (gzip, in parallel) on its way to the registry.
	single := filepath.Join(work, "single.tar")
	singleSize := singleLayerArchive(b, tree, single)
	singleRef := "docker://" + reg.Host + "/skopeo/single:1"
	skopeoSingle := timed(b, func() {
		runCmd(b, skopeo, "copy", "--quiet", "--dest-tls-verify=false", "oci-archive:"+single, singleRef)
	})
	if raw, err := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", singleRef).Output(); err != nil ||
		!strings.Contains(string(raw), string(types.OCILayer)) {
		b.Fatalf("skopeo did not push the single layer compressed: %v\n%s", err, raw)
	}
	os.Remove(single)

	dst := newRepo(b, repo.ModeBareUser)
	var full *PullResult
	strataPull := timed(b, func() {
		var err error
		if full, err = Pull(ctx, dst, strataRef, PullOptions{RegistryOptions: ro, Ref: "os"}); err != nil {
			b.Fatal(err)
		}
	})
	storage := filepath.Join(work, "storage")
	b.Cleanup(func() { syscall.Unmount(filepath.Join(storage, "root", "overlay"), 0) })
	skopeoPull := timed(b, func() {
		runCmd(b, skopeo, "copy", "--quiet", "--src-tls-verify=false", strataRef,
			"containers-storage:[overlay@"+filepath.Join(storage, "root")+"+"+filepath.Join(storage, "run")+"]localhost/strata/os:1")
	})

	// One package changes: the registry update against an object pull of the same commit.
	changed := changePackage(b, tree, "coreutils")
	v2 := commitTree(b, src, tree, "2")
	// The update's push: strata builds the changed layers (its layer cache knows the
	// others, which the registry has); skopeo copies the new image's archive to the
	// repository that has the old one.
	var updPushed *PushResult
	strataUpdPush := timed(b, func() {
		var err error
		if updPushed, err = Push(ctx, src, "os", "docker://"+reg.Host+"/strata/os:2", PushOptions{RegistryOptions: ro}); err != nil {
			b.Fatal(err)
		}
	})
	archive2 := filepath.Join(work, "image2.tar")
	if _, err := Push(ctx, src, "os", "oci-archive:"+archive2, PushOptions{}); err != nil {
		b.Fatal(err)
	}
	skopeoUpdPush := timed(b, func() {
		runCmd(b, skopeo, "copy", "--quiet", "--dest-tls-verify=false", "oci-archive:"+archive2, "docker://"+reg.Host+"/skopeo/os:2")
	})
	upd, err := Pull(ctx, dst, "docker://"+reg.Host+"/strata/os:2", PullOptions{RegistryOptions: ro, Ref: "os"})
	if err != nil || upd.Commit != v2 {
		b.Fatalf("update pull = %v, %v; want %s", upd, err, v2)
	}
	objDst := newRepo(b, repo.ModeBareUser)
	srv := httptest.NewServer(http.FileServer(http.Dir(src.Path())))
	defer srv.Close()
	if _, err := pull.Pull(ctx, objDst, pull.Options{URL: srv.URL, Refs: []string{"os@" + full.Commit.String()}, NoVerify: true}); err != nil {
		b.Fatal(err)
	}
	obj, err := pull.Pull(ctx, objDst, pull.Options{URL: srv.URL, Refs: []string{"os"}, NoVerify: true})
	if err != nil {
		b.Fatal(err)
	}

	b.ReportMetric(strataPush.wall.Seconds(), "strata-push-s")
	b.ReportMetric(skopeoPush.wall.Seconds(), "skopeo-push-s")
	b.ReportMetric(strataPull.wall.Seconds(), "strata-pull-s")
	b.ReportMetric(skopeoPull.wall.Seconds(), "skopeo-pull-s")
	b.ReportMetric(strataPush.self.Seconds(), "strata-push-cpu-s")
	b.ReportMetric(skopeoPush.children.Seconds(), "skopeo-push-cpu-s")
	b.ReportMetric(strataPull.self.Seconds(), "strata-pull-cpu-s")
	b.ReportMetric(skopeoPull.children.Seconds(), "skopeo-pull-cpu-s")
	b.ReportMetric(float64(full.BytesToFetch), "image-bytes")
	b.ReportMetric(float64(upd.BytesFetched), "update-image-bytes")
	b.ReportMetric(float64(obj.Bytes), "update-object-bytes")
	fmt.Fprintf(os.Stderr, "oci bench: %d layers, image %d bytes; push of the image built before: strata %s, skopeo %s (skopeo/strata wall %.2f, CPU %.2f); "+
		"pull strata %s, skopeo %s (skopeo/strata wall %.2f, CPU %.2f)\n",
		pushed.Layers, full.BytesToFetch, strataPush.strata(), skopeoPush.skopeo(),
		skopeoPush.wall.Seconds()/strataPush.wall.Seconds(), skopeoPush.children.Seconds()/strataPush.self.Seconds(),
		strataPull.strata(), skopeoPull.skopeo(),
		skopeoPull.wall.Seconds()/strataPull.wall.Seconds(), skopeoPull.children.Seconds()/strataPull.self.Seconds())
	b.ReportMetric(skopeoSingle.wall.Seconds(), "skopeo-single-push-s")
	b.ReportMetric(skopeoSingle.children.Seconds(), "skopeo-single-push-cpu-s")
	b.ReportMetric(strataFirst.wall.Seconds(), "strata-first-push-s")
	b.ReportMetric(strataFirst.self.Seconds(), "strata-first-push-cpu-s")
	fmt.Fprintf(os.Stderr, "oci bench: first push (every layer built) strata %s; skopeo compressing the same files as one uncompressed %d-byte layer %s (skopeo/strata wall %.2f, CPU %.2f)\n",
		strataFirst.strata(), singleSize, skopeoSingle.skopeo(),
		skopeoSingle.wall.Seconds()/strataFirst.wall.Seconds(), skopeoSingle.children.Seconds()/strataFirst.self.Seconds())
	b.ReportMetric(strataUpdPush.wall.Seconds(), "strata-update-push-s")
	b.ReportMetric(skopeoUpdPush.wall.Seconds(), "skopeo-update-push-s")
	fmt.Fprintf(os.Stderr, "oci bench: update push (%d of %d layers built) strata %s, skopeo %s (skopeo/strata wall %.2f, CPU %.2f)\n",
		updPushed.Layers-updPushed.LayersReused, updPushed.Layers, strataUpdPush.strata(), skopeoUpdPush.skopeo(),
		skopeoUpdPush.wall.Seconds()/strataUpdPush.wall.Seconds(), skopeoUpdPush.children.Seconds()/strataUpdPush.self.Seconds())
	fmt.Fprintf(os.Stderr, "oci bench: update of coreutils (%d bytes of files): image pull %d bytes in %d of %d layers, "+
		"object pull %d bytes (%.2fx), %.1f%% of the image\n",
		changed, upd.BytesFetched, upd.LayersFetched, upd.LayersFetched+upd.LayersSkipped, obj.Bytes,
		float64(upd.BytesFetched)/float64(obj.Bytes), 100*float64(upd.BytesFetched)/float64(full.BytesToFetch))
}

// cpuTime returns the CPU time (user and system) of this process and of its waited-for
// children so far.
func cpuTime() (self, children time.Duration) {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru)
	children = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return self, children
}

// BenchmarkPushCorpus pushes the Debian corpus's commit to Debian's docker-registry on
// loopback, from an archive repository (as make bench's push) and a bare-user one, each
// push building every layer: the push alone, for a CPU profile (-cpuprofile).
func BenchmarkPushCorpus(b *testing.B) {
	ctx := context.Background()
	reg := ocitest.StartRegistry(b, false)
	ro := RegistryOptions{Insecure: true}
	tree := corpusTree(b)
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUser} {
		src := newRepo(b, mode)
		commitTree(b, src, tree, "1")
		b.Run(string(mode), func(b *testing.B) {
			for i := range b.N {
				// Every push builds every layer: the layer and blob caches are emptied
				// first (the registry may answer for a blob of another of its repositories).
				for _, d := range []string{layerCacheDir, blobCacheDir} {
					if err := os.RemoveAll(filepath.Join(src.Path(), d)); err != nil {
						b.Fatal(err)
					}
				}
				self0, _ := cpuTime()
				start := time.Now()
				res, err := Push(ctx, src, "os", fmt.Sprintf("docker://%s/%s/os%d:1", reg.Host, mode, i), PushOptions{RegistryOptions: ro})
				if err != nil {
					b.Fatal(err)
				}
				self1, _ := cpuTime()
				fmt.Fprintf(os.Stderr, "push from %s: %d layers, %.1fs, CPU %.1fs\n", mode, res.Layers, time.Since(start).Seconds(), (self1 - self0).Seconds())
			}
		})
	}
}

// BenchmarkPushUpdateCorpus pushes the Debian corpus's commit, then, timed, the commit
// with coreutils changed to the same registry repository: the update's push alone
// (STRATA_CPUPROFILE=FILE profiles it).
func BenchmarkPushUpdateCorpus(b *testing.B) {
	ctx := context.Background()
	reg := ocitest.StartRegistry(b, false)
	ro := RegistryOptions{Insecure: true}
	tree := corpusTree(b)
	src := newRepo(b, repo.ModeArchive)
	commitTree(b, src, tree, "1")
	dest := "docker://" + reg.Host + "/strata/os:"
	if _, err := Push(ctx, src, "os", dest+"1", PushOptions{RegistryOptions: ro}); err != nil {
		b.Fatal(err)
	}
	changePackage(b, tree, "coreutils")
	commitTree(b, src, tree, "2")
	if f := os.Getenv("STRATA_CPUPROFILE"); f != "" {
		out, err := os.Create(f)
		if err != nil {
			b.Fatal(err)
		}
		defer out.Close()
		pprof.StartCPUProfile(out)
		defer pprof.StopCPUProfile()
	}
	for i := range b.N {
		self0, _ := cpuTime()
		start := time.Now()
		res, err := Push(ctx, src, "os", dest+fmt.Sprint(i+2), PushOptions{RegistryOptions: ro})
		if err != nil {
			b.Fatal(err)
		}
		self1, _ := cpuTime()
		fmt.Fprintf(os.Stderr, "update push: %d of %d layers built, %.1fs, CPU %.1fs\n", res.Layers-res.LayersReused, res.Layers,
			time.Since(start).Seconds(), (self1 - self0).Seconds())
	}
}

// BenchmarkPullLocalCommitCorpus: a bare-user repository that has the Debian corpus's
// commit already pulls its image from Debian's docker-registry (timed: nothing is
// downloaded, the layer refs are recorded from the local commit), then the image of the
// commit with coreutils changed (the layers downloaded).
func BenchmarkPullLocalCommitCorpus(b *testing.B) {
	ctx := context.Background()
	reg := ocitest.StartRegistry(b, false)
	ro := RegistryOptions{Insecure: true}
	tree := corpusTree(b)
	src := newRepo(b, repo.ModeArchive)
	commitTree(b, src, tree, "1")
	dest := "docker://" + reg.Host + "/strata/os:"
	if _, err := Push(ctx, src, "os", dest+"1", PushOptions{RegistryOptions: ro}); err != nil {
		b.Fatal(err)
	}
	node := newRepo(b, repo.ModeBareUser)
	commitTree(b, node, tree, "1")
	changePackage(b, tree, "coreutils")
	commitTree(b, src, tree, "2")
	if _, err := Push(ctx, src, "os", dest+"2", PushOptions{RegistryOptions: ro}); err != nil {
		b.Fatal(err)
	}
	for range b.N {
		var res *PullResult
		m := timed(b, func() {
			var err error
			if res, err = Pull(ctx, node, dest+"1", PullOptions{RegistryOptions: ro}); err != nil {
				b.Fatal(err)
			}
		})
		upd, err := Pull(ctx, node, dest+"2", PullOptions{RegistryOptions: ro})
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(os.Stderr, "pull of the local commit: %d layers recorded, %d bytes fetched, %s; then the update: %d of %d layers, %d bytes\n",
			res.LayersRecorded, res.BytesFetched, m.strata(), upd.LayersFetched, upd.LayersFetched+upd.LayersSkipped, upd.BytesFetched)
	}
}
