//go:build root

package prepareroot

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

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
		if err := configureIP(context.Background(), cfg, filepath.Join(t.TempDir(), "resolv.conf")); err != nil {
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

// TestDHCPConfig brings an interface up as prepare-root does for ignition.config.url= without a
// static ip=: Debian's dnsmasq serves DHCPv4 in one network namespace, on one end of a veth
// pair; dhcpConfig and configureIP run in another namespace, on the other end. The kernel's
// view of that namespace must show the leased address, the default route through the server's
// router option, and resolv.conf its name server.
func TestDHCPConfig(t *testing.T) {
	testutil.RequireRoot(t)
	ipTool := testutil.RequireTool(t, "ip", "iproute2")
	dnsmasq := testutil.RequireTool(t, "dnsmasq", "dnsmasq-base")
	srv, cli := fmt.Sprintf("strata-dhcp-s%d", os.Getpid()), fmt.Sprintf("strata-dhcp-c%d", os.Getpid())
	const clientMAC = "02:00:0a:e7:00:07"
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command(ipTool, args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	for _, ns := range []string{srv, cli} {
		run("netns", "add", ns)
		t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns).Run() })
	}
	run("link", "add", "vsrv", "netns", srv, "type", "veth", "peer", "name", "vcli", "address", clientMAC, "netns", cli)
	run("-n", srv, "addr", "add", "10.231.0.1/24", "dev", "vsrv")
	run("-n", srv, "link", "set", "vsrv", "up")
	lease := filepath.Join(t.TempDir(), "leases")
	server := exec.Command(ipTool, "netns", "exec", srv, dnsmasq, "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--interface=vsrv", "--bind-interfaces", "--dhcp-range=10.231.0.50,10.231.0.60,255.255.255.0,1h",
		"--dhcp-option=option:router,10.231.0.1", "--dhcp-option=option:dns-server,10.231.0.53",
		"--dhcp-host="+clientMAC+",node-7",
		"--dhcp-leasefile="+lease, "--pid-file=", "--log-dhcp", "--log-facility=-")
	var serverLog strings.Builder
	server.Stdout, server.Stderr = &serverLog, &serverLog
	if err := server.Start(); err != nil {
		t.Fatalf("starting dnsmasq: %v", err)
	}
	t.Cleanup(func() {
		server.Process.Kill()
		server.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", serverLog.String())
		}
	})

	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	type result struct {
		cfg    IPConfig
		addrs  []net.Addr
		routes string
		err    error
	}
	resc := make(chan result, 1)
	go func() {
		// This thread enters the client's network namespace and is never given back to the runtime.
		runtime.LockOSThread()
		var r result
		defer func() { resc <- r }()
		ns, err := os.Open(filepath.Join("/run/netns", cli))
		if err != nil {
			r.err = err
			return
		}
		defer ns.Close()
		if r.err = unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); r.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if r.cfg, r.err = dhcpConfig(ctx, IPConfig{DHCP: true}); r.err != nil {
			return
		}
		if r.err = configureIP(ctx, r.cfg, resolv); r.err != nil {
			return
		}
		var iface *net.Interface
		if iface, r.err = net.InterfaceByName(r.cfg.Interface); r.err == nil {
			r.addrs, r.err = iface.Addrs()
		}
		if r.err == nil {
			var b []byte
			b, r.err = os.ReadFile("/proc/thread-self/net/route")
			r.routes = string(b)
		}
	}()
	r := <-resc
	if r.err != nil {
		t.Fatalf("DHCP in the client's namespace: %v", r.err)
	}
	if r.cfg.Interface != "vcli" || !r.cfg.DHCP || r.cfg.Gateway != netip.MustParseAddr("10.231.0.1") ||
		r.cfg.Addr.Bits() != 24 || !netip.MustParsePrefix("10.231.0.48/28").Contains(r.cfg.Addr.Addr()) {
		t.Errorf("lease = %s, want vcli 10.231.0.50-60/24 via 10.231.0.1", r.cfg)
	}
	var got []string
	for _, a := range r.addrs {
		got = append(got, a.String())
	}
	if !slices.Contains(got, r.cfg.Addr.String()) {
		t.Errorf("vcli's addresses = %v, want the leased %s", got, r.cfg.Addr)
	}
	// Destination 0.0.0.0, gateway 10.231.0.1 (0100E70A in the kernel's little-endian hex).
	if !strings.Contains(r.routes, "vcli\t00000000\t0100E70A") {
		t.Errorf("route table:\n%s\nwant a default route through 10.231.0.1 on vcli", r.routes)
	}
	if r.cfg.Hostname != "node-7" {
		t.Errorf("lease's host name = %q, want the server's node-7", r.cfg.Hostname)
	}
	if data, err := os.ReadFile(resolv); err != nil || string(data) != "nameserver 10.231.0.53\n" {
		t.Errorf("resolv.conf = %q, %v; want the server's name server", data, err)
	}
	if data, _ := os.ReadFile(lease); !strings.Contains(string(data), r.cfg.Addr.Addr().String()) {
		t.Errorf("dnsmasq's lease file %q does not name the address the client configured (%s)", data, r.cfg.Addr.Addr())
	}
}
