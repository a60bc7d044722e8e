//go:build root

package prepareroot

import (
	"context"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

// TestConfigureIP configures the loopback interface of a fresh network namespace as ip= would
// configure a network card: address and netmask by ioctl, up, the default route by rtnetlink.
// The kernel's own view (the interface's addresses, /proc's route table) must show them.
func TestConfigureIP(t *testing.T) {
	testutil.RequireRoot(t)
	errc := make(chan error, 1)
	var addrs []net.Addr
	var routes string
	go func() {
		// This thread enters a new network namespace and is never given back to the runtime.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		cfg := IPConfig{Addr: netip.MustParsePrefix("127.0.0.9/8"), Gateway: netip.MustParseAddr("127.0.0.1"), Interface: "lo"}
		if err := configureIP(context.Background(), cfg); err != nil {
			errc <- err
			return
		}
		lo, err := net.InterfaceByName("lo")
		if err == nil {
			addrs, err = lo.Addrs()
		}
		if err == nil {
			var b []byte
			b, err = os.ReadFile("/proc/thread-self/net/route")
			routes = string(b)
		}
		errc <- err
	}()
	if err := <-errc; err != nil {
		t.Fatalf("configureIP in a new network namespace: %v", err)
	}
	var got []string
	for _, a := range addrs {
		got = append(got, a.String())
	}
	if !strings.Contains(strings.Join(got, " "), "127.0.0.9/8") {
		t.Errorf("lo's addresses = %v, want 127.0.0.9/8", got)
	}
	// Destination 0.0.0.0, gateway 127.0.0.1 (0100007F in the kernel's little-endian hex).
	if !strings.Contains(routes, "lo\t00000000\t0100007F") {
		t.Errorf("route table:\n%s\nwant a default route through 127.0.0.1 on lo", routes)
	}
}
