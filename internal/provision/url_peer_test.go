//go:build root && peer

package provision_test

import (
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/strata-os/strata/internal/initramfs"
	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/vm"
)

// TestConfigURLInQEMU boots Debian's kernel in QEMU on its user network with
// ignition.config.url= pointing at an HTTP server of the host and no ip= argument, and an
// initramfs whose /init fetches the config as prepare-root does: the network modules (virtio_net
// and its dependencies, resolved from the kernel's package as strata's initramfs resolves them),
// DHCP from QEMU's built-in server, then the fetch. It must get exactly the bytes served, and
// the lease must carry the host name QEMU's server was given.
func TestConfigURLInQEMU(t *testing.T) {
	cfg := []byte(`{"ignition":{"version":"3.4.0"},"passwd":{"users":[{"name":"core"}]}}`)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var served atomic.Int32 // the handler runs on the server's goroutines
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/node.ign" {
			http.NotFound(w, r)
			return
		}
		served.Add(1)
		w.Write(cfg)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	// QEMU's user network takes the guest's connections to 10.0.2.2 to the host's loopback.
	url := "http://10.0.2.2:" + strings.TrimPrefix(ln.Addr().String(), "127.0.0.1:") + "/node.ign"

	// The user network of vm.Config's Net, with a host name for QEMU's DHCP server to give.
	got, console := bootSource(t, initramfs.Options{Modules: []string{"virtio_pci"}, NetworkModules: initramfs.NetworkModules}, vm.Config{
		Append:    "strata.source=url " + provconfig.ConfigURLArg + "=" + url,
		ExtraArgs: []string{"-netdev", "user,id=n0,hostname=node-7", "-device", "virtio-net-pci,netdev=n0"},
	})
	if want := provconfig.Digest(cfg); got != want || served.Load() != 1 {
		t.Fatalf("config fetched in the guest: %q after %d requests, want %s after 1\nconsole:\n%s", got, served.Load(), want, console)
	}
	if !strings.Contains(console, "(DHCP) via 10.0.2.2") {
		t.Errorf("the console does not show the DHCP lease through QEMU's gateway:\n%s", console)
	}
	if !strings.Contains(console, `host name "node-7"`) {
		t.Errorf("the console does not show the host name QEMU's DHCP server gave (node-7):\n%s", console)
	}
}
