package vmtest

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
)

// CacheDir returns the directory that keeps downloaded fixtures between test runs.
func CacheDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(testutil.RepoRoot(t), ".cache", "vm")
	if c := os.Getenv("STRATA_CACHE"); c != "" {
		dir = filepath.Join(c, "vm")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("creating the VM cache: %v", err)
	}
	return dir
}

// lockWait bounds how long a test waits for another process to finish fetching a fixture:
// an apt download and unpack takes seconds, a KVM proof boot at most kvmProbeTimeout.
const lockWait = 10 * time.Minute

// lockCache holds an exclusive lock on one fixture of the cache while fn runs: test binaries of
// several packages may fetch the same fixture at once. Each fixture has its own lock file
// (.lock-NAME), so fetching one fixture while holding another's lock (the KVM verdict needs the
// kernel) cannot wait on itself. The wait is bounded and a timeout names the lock.
func lockCache(t testing.TB, dir, name string, fn func() error) {
	t.Helper()
	path := filepath.Join(dir, ".lock-"+name)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatalf("opening the cache lock: %v", err)
	}
	defer f.Close()
	deadline := time.Now().Add(lockWait)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatalf("locking %s: %v", path, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for the VM fixture lock %s (another test process is fetching %q; remove the lock file if none is)", lockWait, path, name)
		}
		time.Sleep(100 * time.Millisecond)
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	if err := fn(); err != nil {
		t.Fatal(err)
	}
}

// Kernel is Debian's kernel package, unpacked.
type Kernel struct {
	Version string // e.g. 6.1.0-56-amd64
	Deb     string // the .deb (modules for an initramfs come from here)
	BzImage string // /boot/vmlinuz-<version>, xz-compressed with the EFI stub
	Vmlinux string // the uncompressed ELF, for fast direct boot through PVH
}

// DebianKernel returns the kernel that linux-image-amd64 resolves to, downloaded with
// apt-get download once and kept in the cache.
func DebianKernel(t testing.TB) Kernel {
	t.Helper()
	testutil.RequireTool(t, "apt-get", "apt")
	testutil.RequireTool(t, "dpkg-deb", "dpkg")
	out, err := exec.Command("apt-cache", "depends", "linux-image-amd64").Output()
	if err != nil {
		t.Fatalf("apt-cache depends linux-image-amd64: %v", err)
	}
	var pkg string
	for _, line := range strings.Split(string(out), "\n") {
		if p, ok := strings.CutPrefix(strings.TrimSpace(line), "Depends: "); ok && strings.HasPrefix(p, "linux-image-") {
			pkg = p
			break
		}
	}
	if pkg == "" {
		t.Fatalf("apt-cache depends linux-image-amd64 names no linux-image package (run apt-get update):\n%s", out)
	}
	version := strings.TrimPrefix(pkg, "linux-image-")
	cache := CacheDir(t)
	dir := filepath.Join(cache, "kernel-"+version)
	k := Kernel{Version: version, BzImage: filepath.Join(dir, "vmlinuz"), Vmlinux: filepath.Join(dir, "vmlinux")}
	lockCache(t, cache, "kernel-"+version, func() error {
		if _, err := os.Stat(k.Vmlinux); err == nil {
			debs, _ := filepath.Glob(filepath.Join(dir, "*.deb"))
			if len(debs) == 1 {
				k.Deb = debs[0]
				return nil
			}
		}
		return fetchKernel(pkg, dir, &k)
	})
	return k
}

// Tree unpacks the kernel's package into a new directory with the module index depmod makes,
// as a composed tree has them, and returns the directory (initramfs.ModulesDir finds the
// modules in it).
func (k Kernel) Tree(t testing.TB) string {
	t.Helper()
	depmod := testutil.RequireTool(t, "depmod", "kmod")
	tree := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", k.Deb, tree).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", k.Deb, err, out)
	}
	if out, err := exec.Command(depmod, "-b", tree, k.Version).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	return tree
}

// fetchKernel downloads the package into dir and unpacks vmlinuz and vmlinux.
func fetchKernel(pkg, dir string, k *Kernel) error {
	deb, err := aptDownload(pkg, dir)
	if err != nil {
		return err
	}
	k.Deb = deb
	bz, err := debFile(k.Deb, "./boot/vmlinuz-"+k.Version)
	if err != nil {
		return err
	}
	vmlinux, err := vm.ExtractVmlinux(bz)
	if err != nil {
		return fmt.Errorf("kernel of %s: %w", k.Deb, err)
	}
	if err := writeAtomic(k.BzImage, bz, 0o644); err != nil {
		return err
	}
	return writeAtomic(k.Vmlinux, vmlinux, 0o644)
}

// aptDownload fetches the package into dir with apt-get download and returns the .deb's path.
func aptDownload(pkg, dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", dir, err)
	}
	if debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb")); len(debs) == 1 {
		return debs[0], nil
	}
	cmd := exec.Command("apt-get", "download", pkg)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("apt-get download %s: %w\n%s", pkg, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dir, pkg+"_*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("apt-get download %s left %d packages in %s", pkg, len(debs), dir)
	}
	return debs[0], nil
}

// writeAtomic writes a cache file under a temporary name and renames it into place.
func writeAtomic(path string, data []byte, perm os.FileMode) error {
	if err := os.WriteFile(path+".tmp", data, perm); err != nil {
		return err
	}
	return os.Rename(path+".tmp", path)
}

// debFile reads one file of a .deb's data archive (dpkg-deb --fsys-tarfile, without unpacking
// the 400 MB of modules).
func debFile(deb, name string) ([]byte, error) {
	cmd := exec.Command("dpkg-deb", "--fsys-tarfile", deb)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dpkg-deb --fsys-tarfile %s: %w", deb, err)
	}
	defer func() { out.Close(); cmd.Wait() }()
	tr := tar.NewReader(out)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s has no %s", deb, name)
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w (%s)", deb, err, stderr.String())
		}
		if h.Name == name {
			return io.ReadAll(tr)
		}
	}
}
