//go:build root && peer

package provision_test

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/initramfs"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/testutil"
	"github.com/strata-os/strata/internal/vm"
	"github.com/strata-os/strata/internal/vm/vmtest"
)

// TestConfigURLInQEMU boots Debian's kernel in QEMU on its user network with
// ignition.config.url= pointing at an HTTP server of the host and no ip= argument, and an
// initramfs whose /init fetches the config as prepare-root does: the network modules (virtio_net
// and its dependencies, resolved from the kernel's package as strata's initramfs resolves them),
// DHCP from QEMU's built-in server, then the fetch. It must get exactly the bytes served.
func TestConfigURLInQEMU(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "qemu-system-x86_64", "qemu-system-x86")
	k := vmtest.DebianKernel(t)
	tree := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", k.Deb, tree).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x %s: %v\n%s", k.Deb, err, out)
	}
	depmod := testutil.RequireTool(t, "depmod", "kmod")
	if out, err := exec.Command(depmod, "-b", tree, k.Version).CombinedOutput(); err != nil {
		t.Fatalf("depmod: %v\n%s", err, out)
	}
	mods, err := initramfs.ModulesDir(tree, k.Version)
	if err != nil {
		t.Fatal(err)
	}
	initrd := filepath.Join(t.TempDir(), "initrd.img")
	var img bytes.Buffer
	if err := initramfs.Build(&img, initramfs.Options{Init: vmtest.BuildStatic(t, "./testdata/sourceinit"), ModulesDir: mods,
		Modules: []string{"virtio_pci"}, NetworkModules: initramfs.NetworkModules}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(initrd, img.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := []byte(`{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served int
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/node.ign" {
			http.NotFound(w, r)
			return
		}
		served++
		w.Write(cfg)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// QEMU's user network takes the guest's connections to 10.0.2.2 to the host's loopback.
	url := "http://10.0.2.2:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:") + "/node.ign"

	dir := t.TempDir()
	m, err := vm.Start(context.Background(), vm.Config{
		Accel: vmtest.Accel(t), Kernel: k.Vmlinux, Initrd: initrd, Net: true,
		Append:     "console=ttyS0 panic=-1 strata.source=url " + provconfig.ConfigURLArg + "=" + url,
		ConsoleLog: filepath.Join(dir, "console.log"), MarkerLog: filepath.Join(dir, "markers.log"),
		Until: []string{`^STRATA-MARK source `}, Timeout: 5 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	r := m.Wait()
	console, _ := os.ReadFile(filepath.Join(dir, "console.log"))
	var got string
	for _, mk := range r.Markers {
		if mk.Name == "source" {
			got = mk.Value
		}
	}
	if want := provconfig.Digest(cfg); got != want || served != 1 {
		t.Fatalf("config fetched in the guest: %q after %d requests, want %s after 1 (run ended: %s)\nconsole:\n%s", got, served, want, r.Reason, console)
	}
	if !strings.Contains(string(console), "(DHCP) via 10.0.2.2") {
		t.Errorf("the console does not show the DHCP lease through QEMU's gateway:\n%s", console)
	}
}
