package delta

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// childEnv names the delta directory and repository that
// TestApplyMemoryChild applies into when the test binary runs as a child.
const childEnv = "STRATA_DELTA_MEMORY_CHILD"

// TestApplyMemoryChild is the child process of TestApplyBoundedMemory.
func TestApplyMemoryChild(t *testing.T) {
	arg := os.Getenv(childEnv)
	if arg == "" {
		t.Skip("runs only as the child of TestApplyBoundedMemory")
	}
	dir, repoPath, _ := strings.Cut(arg, "\n")
	r, err := repo.Open(repoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := ApplyOffline(context.Background(), r, dir); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(status), "\n") {
		if strings.HasPrefix(l, "VmHWM:") {
			fmt.Println(l)
		}
	}
}

// peakRSS reads the VmHWM line a child printed, in bytes.
func peakRSS(t *testing.T, out []byte) int64 {
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatalf("child's %q: %v", l, err)
			}
			return kb << 10
		}
	}
	t.Fatalf("child printed no VmHWM:\n%s", out)
	return 0
}

// TestApplyBoundedMemory: applying a delta whose one part holds more than
// 100 MB takes less than 128 MiB of memory at its peak (the child's
// VmHWM), because the part is streamed through a
// spool file instead of being decoded in memory.
func TestApplyBoundedMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes a 112 MB delta part; not measured with -short or under the race detector")
	}
	t.Parallel()
	tmp := t.TempDir()
	src, err := repo.Init(filepath.Join(tmp, "src"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	// 28 distinct files of 4 MB: random blocks that repeat, so that xz
	// makes a small part quickly of a large payload.
	rng := rand.New(rand.NewPCG(1, 2))
	block := make([]byte, 64<<10)
	for i := range len(block) / 8 {
		binary.LittleEndian.PutUint64(block[8*i:], rng.Uint64())
	}
	tree := filepath.Join(tmp, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	const files, fileSize = 28, 4_000_000
	data := make([]byte, fileSize)
	for i := range files {
		for off := 0; off < fileSize; off += len(block) {
			n := copy(data[off:], block)
			binary.LittleEndian.PutUint32(data[off:off+n], uint32(i))
		}
		if err := os.WriteFile(filepath.Join(tree, fmt.Sprintf("f%02d", i)), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	to := commitDir(t, src, tree)
	sb, err := Generate(context.Background(), src, ostree.Checksum{}, to, Options{MinFallbackSize: 16 << 20, MaxChunkSize: 200 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(sb.Parts) != 1 || sb.Parts[0].UncompressedSize < 100<<20 {
		t.Fatalf("delta has parts %+v, want one of more than 100 MiB", sb.Parts)
	}
	dst, err := repo.Init(filepath.Join(tmp, "dst"), repo.ModeBareUserOnly)
	if err != nil {
		t.Fatal(err)
	}
	dst.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestApplyMemoryChild$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+filepath.Join(src.Path(), sb.Name.Dir())+"\n"+dst.Path())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child applying the delta: %v\n%s", err, out)
	}
	// The child's own high-water mark: wait4's maximum resident set
	// would count the parent's, which the child shared until it ran exec.
	peak := peakRSS(t, out)
	t.Logf("peak RSS applying a %d-byte part: %.1f MiB", sb.Parts[0].UncompressedSize, float64(peak)/(1<<20))
	if peak >= 128<<20 {
		t.Errorf("peak RSS applying the delta = %.1f MiB, want under 128 MiB", float64(peak)/(1<<20))
	}
	dst, err = repo.Open(dst.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer dst.Close()
	if _, err := dst.ReadCommit(to); err != nil {
		t.Errorf("the child did not store the commit: %v", err)
	}
	fsckClean(t, dst)
}

// TestPayloadNotInHeap: a file of mapMin bytes or more that a patch is
// computed from is read into mapped memory, not Go memory, so that the
// largest files of an update do not raise the heap the collector paces
// itself by (see mapBytes).
func TestPayloadNotInHeap(t *testing.T) {
	tmp := t.TempDir()
	r, err := repo.Init(filepath.Join(tmp, "repo"), repo.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	data := make([]byte, 4<<20)
	rng := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < len(data); i += 8 {
		binary.LittleEndian.PutUint64(data[i:], rng.Uint64())
	}
	tree := filepath.Join(tmp, "tree")
	if err := os.MkdirAll(tree, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "big"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	var c ostree.Checksum
	err = reachable(context.Background(), r, commitDir(t, r, tree), func(n ostree.ObjectName, _ string) {
		if n.Type == ostree.ObjectFile {
			c = n.Checksum
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, got, release, err := readPayload(r, c, int64(len(data)))
	runtime.ReadMemStats(&after)
	defer release()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("readPayload = %d bytes, %v; want the file's %d bytes", len(got), err, len(data))
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(len(data))/4 {
		t.Errorf("reading a %d-byte payload allocated %d bytes of Go memory, want at most %d", len(data), alloc, len(data)/4)
	}
}
