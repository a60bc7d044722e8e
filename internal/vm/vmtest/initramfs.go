package vmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/u-root/u-root/pkg/cpio"
)

// BuildStatic builds the Go main package pkg (a path relative to the test's package directory,
// such as ./testdata/initmark) as a static binary and returns its path.
func BuildStatic(t testing.TB, pkg string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), filepath.Base(pkg))
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, msg)
	}
	return out
}

// Initramfs writes a newc cpio archive (uncompressed: the kernel unpacks it fastest) holding
// init as /init, /dev/console, and the extra records, and returns its path.
func Initramfs(t testing.TB, init string, extra ...cpio.Record) string {
	t.Helper()
	data, err := os.ReadFile(init)
	if err != nil {
		t.Fatalf("reading the init program: %v", err)
	}
	recs := []cpio.Record{
		cpio.Directory("dev", 0o755),
		// The kernel opens /dev/console for init before init can mount devtmpfs.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.StaticRecord(data, cpio.Info{Name: "init", Mode: cpio.S_IFREG | 0o755}),
	}
	recs = append(recs, extra...)
	path := filepath.Join(t.TempDir(), "initrd.cpio")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := cpio.Newc.Writer(f)
	if err := cpio.WriteRecordsAndDirs(w, recs); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	if err := cpio.WriteTrailer(w); err != nil {
		t.Fatalf("writing %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}
