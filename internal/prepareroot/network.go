package prepareroot

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// IPConfig is the initramfs's network configuration from the kernel argument ip=, spelled as
// dracut spells it: static, ip=CLIENT:[PEER]:GATEWAY:NETMASK:HOSTNAME:INTERFACE:{none|off}[:DNS1[:DNS2]],
// or DHCPv4, ip={dhcp|on|any} or ip=INTERFACE:{dhcp|on|any} (DHCP set, the rest filled in from
// the server's answer). IPv6 autoconfiguration (dhcp6, auto6, ...) is refused.
type IPConfig struct {
	DHCP      bool         // ask a DHCPv4 server for the rest
	Addr      netip.Prefix // the client's address with the netmask's length
	Gateway   netip.Addr   // invalid: no default route
	Hostname  string
	Interface string // "": the first interface other than lo
	DNS       []netip.Addr
}

// dhcpForms are the values of ip= (or of its autoconf field) that mean DHCPv4.
var dhcpForms = map[string]bool{"dhcp": true, "on": true, "any": true, "single-dhcp": true}

// ParseIP reads the ip= arguments of a kernel command line. found is false when there is
// none; the last one wins, as for every kernel argument.
func ParseIP(cmdline string) (cfg IPConfig, found bool, err error) {
	val := ""
	for _, arg := range splitCmdline(cmdline) {
		if arg == "--" {
			break
		}
		if v, ok := strings.CutPrefix(arg, "ip="); ok {
			val, found = v, true
		}
	}
	if !found {
		return cfg, false, nil
	}
	f := strings.Split(val, ":")
	switch {
	case len(f) == 1 && dhcpForms[f[0]]:
		return IPConfig{DHCP: true}, true, nil
	case len(f) >= 2 && len(f) <= 4 && dhcpForms[f[1]]: // INTERFACE:dhcp[:MTU[:MAC]]
		if err := checkIfname(f[0]); err != nil {
			return cfg, true, fmt.Errorf("ip=%s: %w", val, err)
		}
		return IPConfig{DHCP: true, Interface: f[0]}, true, nil
	case len(f) < 7:
		return cfg, true, fmt.Errorf("ip=%s: want dhcp, INTERFACE:dhcp or CLIENT:[PEER]:GATEWAY:NETMASK:HOSTNAME:INTERFACE:none: %w", val, errdefs.ErrUnsupported)
	case len(f) > 9:
		return cfg, true, fmt.Errorf("ip=%s: too many fields: %w", val, errdefs.ErrInvalid)
	case dhcpForms[f[6]]:
		if err := checkIfname(f[5]); err != nil {
			return cfg, true, fmt.Errorf("ip=%s: %w", val, err)
		}
		return IPConfig{DHCP: true, Interface: f[5], Hostname: f[4]}, true, nil
	case f[6] != "none" && f[6] != "off":
		return cfg, true, fmt.Errorf("ip=%s: autoconf %q: strata brings up static (none, off) or DHCPv4 (dhcp, on, any) configurations: %w", val, f[6], errdefs.ErrUnsupported)
	}
	addr, err := netip.ParseAddr(f[0])
	if err != nil || !addr.Is4() {
		return cfg, true, fmt.Errorf("ip=%s: client address %q: want IPv4: %w", val, f[0], errdefs.ErrInvalid)
	}
	mask, err := netip.ParseAddr(f[3])
	bits := -1
	if err == nil && mask.Is4() {
		bits = maskBits(mask.As4())
	} else if n, nerr := parseBits(f[3]); nerr == nil {
		bits = n
	}
	if bits < 0 {
		return cfg, true, fmt.Errorf("ip=%s: netmask %q: want a dotted mask or a prefix length: %w", val, f[3], errdefs.ErrInvalid)
	}
	cfg.Addr = netip.PrefixFrom(addr, bits)
	if f[2] != "" {
		if cfg.Gateway, err = netip.ParseAddr(f[2]); err != nil || !cfg.Gateway.Is4() {
			return cfg, true, fmt.Errorf("ip=%s: gateway %q: want IPv4: %w", val, f[2], errdefs.ErrInvalid)
		}
	}
	cfg.Hostname, cfg.Interface = f[4], f[5]
	if err := checkIfname(cfg.Interface); err != nil {
		return cfg, true, fmt.Errorf("ip=%s: %w", val, err)
	}
	for _, d := range f[7:] {
		if d == "" {
			continue
		}
		a, err := netip.ParseAddr(d)
		if err != nil {
			return cfg, true, fmt.Errorf("ip=%s: name server %q: %w", val, d, errdefs.ErrInvalid)
		}
		cfg.DNS = append(cfg.DNS, a)
	}
	return cfg, true, nil
}

// maskBits returns the prefix length of a contiguous netmask, or -1.
func maskBits(m [4]byte) int {
	v := uint32(m[0])<<24 | uint32(m[1])<<16 | uint32(m[2])<<8 | uint32(m[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return -1
	}
	return n
}

func parseBits(s string) (int, error) {
	var n int
	if _, err := fmt.Sscanf(s, "%d", &n); err != nil || n < 0 || n > 32 || fmt.Sprint(n) != s {
		return -1, errdefs.ErrInvalid
	}
	return n, nil
}

// checkIfname refuses what cannot be a network interface's name ("" means the first one).
func checkIfname(name string) error {
	if strings.ContainsAny(name, "/ ") || len(name) > 15 || name == "." || name == ".." {
		return fmt.Errorf("interface name %q: %w", name, errdefs.ErrInvalid)
	}
	return nil
}
