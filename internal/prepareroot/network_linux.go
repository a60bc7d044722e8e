package prepareroot

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/strata-os/strata/internal/errdefs"
	"golang.org/x/sys/unix"
)

// FirstBootModulesList is the initramfs file naming the modules to load only on a node's
// first boot, to find its provisioning config (written by internal/initramfs).
const FirstBootModulesList = "/etc/initrd-modules-firstboot"

// NetworkModulesList is the initramfs file naming the modules to load only when the network is
// brought up (written by internal/initramfs).
const NetworkModulesList = "/etc/initrd-modules-network"

// LoadModules loads the modules listed in file (ModulesList's format) and returns how many
// loaded; a missing file loads none. Failures are reported on con and skipped.
func LoadModules(con io.Writer, file string) int { return loadModules(con, file) }

// linkWait bounds the wait for the network interface to appear once its driver is loaded.
const linkWait = 10 * time.Second

// dhcpWait bounds the whole DHCPv4 exchange (discover, offer, request, ack, with retries).
const dhcpWait = 30 * time.Second

// BringUpNetwork configures the initramfs's network from the ip= kernel argument (IPConfig:
// static as dracut spells it, or DHCPv4), or by DHCPv4 on the first interface when there is no
// ip=, as Fedora CoreOS's initramfs does, so that a provisioning config can be fetched from
// ignition.config.url=: loopback and the interface up, the address, the default route through
// the gateway, /etc/resolv.conf with the name servers. It returns the configuration applied.
// The interface keeps it after switch_root until the system's network manager takes it over
// (a DHCP lease is not renewed by strata); docs/provisioning.md, "Config sources".
func BringUpNetwork(ctx context.Context) (IPConfig, error) {
	raw, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return IPConfig{}, fmt.Errorf("reading kernel command line: %w", err)
	}
	cfg, found, err := ParseIP(string(raw))
	if err != nil {
		return cfg, err
	}
	if !found {
		cfg = IPConfig{DHCP: true}
	}
	if cfg.DHCP {
		if cfg, err = dhcpConfig(ctx, cfg); err != nil {
			return cfg, err
		}
	}
	return cfg, configureIP(ctx, cfg, "/etc/resolv.conf")
}

// dhcpConfig asks a DHCPv4 server on cfg's interface (or the first one) for an address and
// returns cfg filled in from its answer: address and netmask, the first router as the gateway,
// the name servers, the host name unless ip= gave one.
func dhcpConfig(ctx context.Context, cfg IPConfig) (IPConfig, error) {
	ifname, err := waitInterface(ctx, cfg.Interface)
	if err != nil {
		return cfg, err
	}
	cfg.Interface = ifname
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return cfg, fmt.Errorf("opening an inet socket: %w", err)
	}
	err = setUp(fd, ifname)
	unix.Close(fd)
	if err != nil {
		return cfg, err
	}
	ctx, cancel := context.WithTimeout(ctx, dhcpWait)
	defer cancel()
	c, err := nclient4.New(ifname, nclient4.WithTimeout(4*time.Second), nclient4.WithRetry(6))
	if err != nil {
		return cfg, fmt.Errorf("DHCP on %s: %w", ifname, err)
	}
	defer c.Close()
	// The host name (option 12) is asked for: servers send it only to clients that ask.
	lease, err := c.Request(ctx, dhcpv4.WithRequestedOptions(dhcpv4.OptionHostName))
	if err != nil {
		return cfg, fmt.Errorf("DHCP on %s: no lease within %s: %w: %w", ifname, dhcpWait, err, errdefs.ErrUnavailable)
	}
	ack := lease.ACK
	ip, ok := netip.AddrFromSlice(ack.YourIPAddr.To4())
	if !ok || !ip.IsGlobalUnicast() {
		return cfg, fmt.Errorf("DHCP on %s: the server offered %v: %w", ifname, ack.YourIPAddr, errdefs.ErrInvalid)
	}
	mask := ack.SubnetMask()
	if mask == nil {
		mask = ack.YourIPAddr.DefaultMask()
	}
	bits, size := mask.Size()
	if size != 32 {
		return cfg, fmt.Errorf("DHCP on %s: the server's netmask %v: %w", ifname, mask, errdefs.ErrInvalid)
	}
	cfg.Addr = netip.PrefixFrom(ip, bits)
	for _, r := range ack.Router() {
		if gw, ok := netip.AddrFromSlice(r.To4()); ok && gw.IsValid() {
			cfg.Gateway = gw
			break
		}
	}
	for _, d := range ack.DNS() {
		if a, ok := netip.AddrFromSlice(d.To4()); ok {
			cfg.DNS = append(cfg.DNS, a)
		}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = ack.HostName()
	}
	return cfg, nil
}

// String describes the configuration as the console shows it.
func (c IPConfig) String() string {
	how := "static"
	if c.DHCP {
		how = "DHCP"
	}
	s := fmt.Sprintf("%s %s (%s)", c.Interface, c.Addr, how)
	if c.Gateway.IsValid() {
		s += " via " + c.Gateway.String()
	}
	if len(c.DNS) > 0 {
		s += fmt.Sprintf(", name servers %v", c.DNS)
	}
	if c.Hostname != "" {
		s += fmt.Sprintf(", host name %q", c.Hostname)
	}
	return s
}

// configureIP applies a configuration; the name servers go to resolvConf.
func configureIP(ctx context.Context, cfg IPConfig, resolvConf string) error {
	ifname, err := waitInterface(ctx, cfg.Interface)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening an inet socket: %w", err)
	}
	defer unix.Close(fd)
	if err := setUp(fd, "lo"); err != nil {
		return err
	}
	mask := net.CIDRMask(cfg.Addr.Bits(), 32)
	for _, s := range []struct {
		req  uint
		what string
		addr []byte
	}{{unix.SIOCSIFADDR, "address", cfg.Addr.Addr().AsSlice()}, {unix.SIOCSIFNETMASK, "netmask", mask}} {
		ifr, err := unix.NewIfreq(ifname)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifname, err)
		}
		if err := ifr.SetInet4Addr(s.addr); err != nil {
			return fmt.Errorf("interface %s: %w", ifname, err)
		}
		if err := unix.IoctlIfreq(fd, s.req, ifr); err != nil {
			return fmt.Errorf("setting the %s of %s to %s: %w", s.what, ifname, net.IP(s.addr), err)
		}
	}
	if err := setUp(fd, ifname); err != nil {
		return err
	}
	if cfg.Gateway.IsValid() {
		iface, err := net.InterfaceByName(ifname)
		if err != nil {
			return fmt.Errorf("interface %s: %w", ifname, err)
		}
		if err := addDefaultRoute(cfg.Gateway.As4(), iface.Index); err != nil {
			return fmt.Errorf("adding the default route through %s on %s: %w", cfg.Gateway, ifname, err)
		}
	}
	if len(cfg.DNS) > 0 {
		var b strings.Builder
		for _, d := range cfg.DNS {
			fmt.Fprintf(&b, "nameserver %s\n", d)
		}
		if err := os.WriteFile(resolvConf, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("writing the initramfs's resolv.conf: %w", err)
		}
	}
	return nil
}

// waitInterface waits for the interface named name, or for the first one other than loopback
// (by index) when name is "", to appear. It asks the kernel by rtnetlink, which answers for the
// calling thread's network namespace.
func waitInterface(ctx context.Context, name string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, linkWait)
	defer cancel()
	for {
		ifs, _ := net.Interfaces()
		for _, i := range ifs {
			if (name == "" && i.Flags&net.FlagLoopback == 0) || i.Name == name {
				return i.Name, nil
			}
		}
		select {
		case <-ctx.Done():
			want := name
			if want == "" {
				want = "a network interface"
			}
			return "", fmt.Errorf("waiting %s for %s (is its driver in the initramfs?): %w", linkWait, want, errdefs.ErrNotFound)
		case <-time.After(rootPoll):
		}
	}
}

func setUp(fd int, ifname string) error {
	ifr, err := unix.NewIfreq(ifname)
	if err != nil {
		return fmt.Errorf("interface %s: %w", ifname, err)
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("reading the flags of %s: %w", ifname, err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing %s up: %w", ifname, err)
	}
	return nil
}

// addDefaultRoute adds 0.0.0.0/0 via gw on the interface with index oif, with one rtnetlink
// RTM_NEWROUTE request, and waits for the kernel's answer.
func addDefaultRoute(gw [4]byte, oif int) error {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	le := binary.LittleEndian // rtnetlink is in host order; strata builds for little-endian machines
	msg := make([]byte, unix.SizeofNlMsghdr+unix.SizeofRtMsg, 64)
	le.PutUint16(msg[4:], unix.RTM_NEWROUTE)
	le.PutUint16(msg[6:], unix.NLM_F_REQUEST|unix.NLM_F_ACK|unix.NLM_F_CREATE|unix.NLM_F_EXCL)
	le.PutUint32(msg[8:], 1) // sequence number
	rt := msg[unix.SizeofNlMsghdr:]
	rt[0] = unix.AF_INET           // family
	rt[4] = unix.RT_TABLE_MAIN     // table
	rt[5] = unix.RTPROT_BOOT       // protocol
	rt[6] = unix.RT_SCOPE_UNIVERSE // scope
	rt[7] = unix.RTN_UNICAST       // type
	attr := func(typ uint16, val []byte) {
		a := make([]byte, 4, 8)
		le.PutUint16(a[0:], uint16(4+len(val)))
		le.PutUint16(a[2:], typ)
		msg = append(append(msg, a...), val...)
	}
	attr(unix.RTA_GATEWAY, gw[:])
	var idx [4]byte
	le.PutUint32(idx[:], uint32(oif))
	attr(unix.RTA_OIF, idx[:])
	le.PutUint32(msg[0:], uint32(len(msg)))
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return err
	}
	buf := make([]byte, 4096)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return err
	}
	if n < unix.SizeofNlMsghdr+4 || le.Uint16(buf[4:]) != unix.NLMSG_ERROR {
		return errors.New("unexpected rtnetlink answer")
	}
	if code := int32(le.Uint32(buf[unix.SizeofNlMsghdr:])); code != 0 {
		return unix.Errno(-code)
	}
	return nil
}
