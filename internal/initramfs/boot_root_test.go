//go:build root && peer

package initramfs

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
	"github.com/strata-os/strata/internal/vm/vmtest"
)

// Console lines of a boot, in order: the firmware starts the boot loader,
// the kernel starts, it begins and ends unpacking the initramfs, /init
// (strata prepare-root) runs and prints its first line.
const (
	msBds     = `BdsDxe: starting`
	msLinux   = `Linux version`
	msUnpack  = `Trying to unpack rootfs`
	msFreeing = `Freeing initrd memory`
	msInit    = `Run /init`
	msStrata  = `strata prepare-root`
)

// bootTree unpacks Debian's kernel package into a tree with its module
// index (depmod), as a composed tree has it, and builds strata statically
// for /init; it returns the kernel, the tree's module directory and strata.
func bootTree(tb testing.TB) (vmtest.Kernel, string, string) {
	tb.Helper()
	testutil.RequireRoot(tb)
	testutil.RequireTool(tb, "qemu-system-x86_64", "qemu-system-x86")
	k := vmtest.DebianKernel(tb)
	mods, err := ModulesDir(k.Tree(tb), k.Version)
	if err != nil {
		tb.Fatal(err)
	}
	return k, mods, vmtest.BuildStatic(tb, "../../cmd/strata")
}

// TestBootZstdInQEMU boots Debian's kernel directly with the zstd archive
// BuildForTree makes (strata as /init, 4 windows and more of it): the
// kernel must unpack it and run /init, whose first console line shows.
func TestBootZstdInQEMU(t *testing.T) {
	k, mods, strata := bootTree(t)
	var buf bytes.Buffer
	if err := Build(&buf, Options{Init: strata, ModulesDir: mods, Modules: DefaultModules, Compression: Zstd}); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(t.TempDir(), "initrd.zst")
	if err := os.WriteFile(img, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	var con bytes.Buffer
	ms, tail := bootTimes(t, vm.Config{Kernel: k.Vmlinux, Initrd: img, Append: "console=ttyS0 panic=-1", ConsoleOut: &con})
	t.Logf("%d bytes: %s", buf.Len(), ms)
	if _, ok := ms[msFreeing]; !ok {
		t.Errorf("console shows no %q line, want the kernel to finish unpacking:\n%s", msFreeing, tail)
	}
	if strings.Contains(con.String(), "Initramfs unpacking failed") {
		t.Errorf("the kernel failed to unpack the zstd archive:\n%s", tail)
	}
}

// BenchmarkBootCompression boots Debian's kernel under QEMU with strata's
// initramfs (strata itself as /init and the default modules, as compose
// builds it) uncompressed, gzip- and zstd-compressed, directly
// (-kernel/-initrd: the guest decompresses) and through OVMF and
// systemd-boot from an ESP (the firmware also reads the file through UEFI
// block I/O). Each round boots every variant once, in turn, so that the
// host's load falls on all of them alike; -benchtime=Nx runs N rounds. It
// reports the median time from the kernel's start (direct) or the
// firmware's "BdsDxe: starting" (UEFI) to prepare-root's first console
// line, the archive sizes, and the ratios to the uncompressed archive.
//
//	go test -tags 'root peer' -run '^$' -bench BootCompression -benchtime 3x ./internal/initramfs/
func BenchmarkBootCompression(b *testing.B) {
	if _, err := os.Stat(vm.DefaultOVMFCode); err != nil {
		b.Fatalf("%s missing: install the Debian package ovmf (scripts/deps)", vm.DefaultOVMFCode)
	}
	k, mods, strata := bootTree(b)
	dir := b.TempDir()
	comps := []Compression{None, Gzip, Zstd}
	imgs := map[Compression]string{}
	disks := map[Compression]string{}
	sizes := map[Compression]int{}
	for _, c := range comps {
		var buf bytes.Buffer
		start := time.Now()
		if err := Build(&buf, Options{Init: strata, ModulesDir: mods, Modules: DefaultModules, Compression: c}); err != nil {
			b.Fatal(err)
		}
		fmt.Printf("%s: %d bytes, built in %.1fs\n", c, buf.Len(), time.Since(start).Seconds())
		sizes[c] = buf.Len()
		imgs[c] = filepath.Join(dir, "initrd-"+string(c))
		if err := os.WriteFile(imgs[c], buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		disks[c] = vmtest.ESPDisk(b, vmtest.ESP{
			Files:   map[string]string{"vmlinuz": k.BzImage, "initrd": imgs[c]},
			Entries: map[string]string{"strata.conf": "title strata\nlinux /vmlinuz\ninitrd /initrd\noptions console=ttyS0 panic=-1\n"},
		})
	}
	type key struct {
		mode string
		c    Compression
	}
	times, unpack := map[key][]float64{}, map[key][]float64{}
	for i := 0; i < b.N; i++ {
		for _, mode := range []string{"direct", "uefi"} {
			for _, c := range comps {
				cfg := vm.Config{Kernel: k.Vmlinux, Initrd: imgs[c], Append: "console=ttyS0 panic=-1"}
				from := msLinux
				if mode == "uefi" {
					cfg = vm.Config{UEFI: &vm.UEFI{}, Disks: []vm.Disk{{Path: disks[c], Snapshot: true}}}
					from = msBds
				}
				ms, _ := bootTimes(b, cfg)
				// b.Log keeps only a benchmark's first lines: the rounds go to stdout.
				fmt.Printf("round %d %s %s: %s\n", i+1, mode, c, ms)
				for _, p := range []string{from, msUnpack, msFreeing, msStrata} {
					if _, ok := ms[p]; !ok {
						b.Fatalf("%s %s: milestones %v, want %q among them", mode, c, ms, p)
					}
				}
				k := key{mode, c}
				times[k] = append(times[k], (ms[msStrata] - ms[from]).Seconds())
				unpack[k] = append(unpack[k], (ms[msFreeing] - ms[msUnpack]).Seconds())
			}
		}
	}
	for _, mode := range []string{"direct", "uefi"} {
		base := median(times[key{mode, None}])
		for _, c := range comps {
			k := key{mode, c}
			m := median(times[k])
			b.ReportMetric(m, mode+"-"+string(c)+"-s")
			fmt.Printf("%-6s %-4s %9d bytes (%.2f×)  to prepare-root: median %.1fs (%.2f×) of %v; unpacking: median %.1fs of %v\n",
				mode, c, sizes[c], float64(sizes[c])/float64(sizes[None]), m, m/base, times[k], median(unpack[k]), unpack[k])
		}
	}
}

// milestones maps a milestone's pattern to when it showed up.
type milestones map[string]time.Duration

func (m milestones) String() string {
	var parts []string
	for _, p := range []string{msBds, msLinux, msUnpack, msFreeing, msInit, msStrata} {
		if at, ok := m[p]; ok {
			parts = append(parts, fmt.Sprintf("%q %.1fs", p, at.Seconds()))
		}
	}
	return strings.Join(parts, ", ")
}

// bootTimes boots cfg until prepare-root prints its first line (there is
// no root disk: what it says does not matter) and returns the milestones
// and the console's end.
func bootTimes(b testing.TB, cfg vm.Config) (milestones, string) {
	b.Helper()
	cfg.Accel = vmtest.Accel(b)
	cfg.Failures = []string{}
	cfg.Milestones = []string{msBds, msLinux, msUnpack, msFreeing, msInit, msStrata}
	cfg.Timeout = 10 * time.Minute
	seen := make(chan struct{})
	cfg.ConsoleOut = &lineWatch{want: msStrata, seen: seen, copy: cfg.ConsoleOut}
	m, err := vm.Start(context.Background(), cfg)
	if err != nil {
		b.Fatal(err)
	}
	select {
	case <-seen:
		// The console is polled every 100 ms: let the milestone be recorded.
		time.Sleep(300 * time.Millisecond)
	case <-m.Done():
	}
	m.Kill()
	r := m.Wait()
	out := milestones{}
	for _, ms := range r.Milestones {
		out[ms.Pattern] = ms.At
	}
	if _, ok := out[msStrata]; !ok {
		b.Fatalf("boot ended (%s) before prepare-root ran; console:\n%s", r.Reason, r.ConsoleTail)
	}
	return out, r.ConsoleTail
}

// lineWatch closes seen once want shows up in what is written to it, and
// passes it on to copy if set.
type lineWatch struct {
	mu   sync.Mutex
	buf  []byte
	want string
	seen chan struct{}
	done bool
	copy io.Writer
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.copy != nil {
		w.copy.Write(p)
	}
	if !w.done {
		w.buf = append(w.buf, p...)
		if bytes.Contains(w.buf, []byte(w.want)) {
			w.done = true
			close(w.seen)
		}
		if len(w.buf) > 4096 {
			w.buf = append([]byte(nil), w.buf[len(w.buf)-len(w.want):]...)
		}
	}
	return len(p), nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
