package prepareroot

import (
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func TestParseIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, cmdline string
		want          IPConfig
		found         bool
		err           error
	}{
		{name: "none", cmdline: "root=LABEL=root quiet"},
		{
			name:    "QEMU user network",
			cmdline: "root=LABEL=root ip=10.0.2.15::10.0.2.2:255.255.255.0:node1:eth0:none:10.0.2.3",
			want: IPConfig{Addr: netip.MustParsePrefix("10.0.2.15/24"), Gateway: netip.MustParseAddr("10.0.2.2"),
				Hostname: "node1", Interface: "eth0", DNS: []netip.Addr{netip.MustParseAddr("10.0.2.3")}},
			found: true,
		},
		{
			name:    "prefix length, no gateway, first interface, last one wins",
			cmdline: "ip=dhcp ip=192.168.1.5:::16:::off",
			want:    IPConfig{Addr: netip.MustParsePrefix("192.168.1.5/16")},
			found:   true,
		},
		{name: "dhcp", cmdline: "ip=dhcp", want: IPConfig{DHCP: true}, found: true},
		{name: "on", cmdline: "ip=on", want: IPConfig{DHCP: true}, found: true},
		{name: "dhcp on an interface", cmdline: "ip=eth1:dhcp", want: IPConfig{DHCP: true, Interface: "eth1"}, found: true},
		{name: "dhcp on an interface with an MTU", cmdline: "ip=eth1:dhcp:1400", want: IPConfig{DHCP: true, Interface: "eth1"}, found: true},
		{name: "autoconf dhcp in the last field", cmdline: "ip=::::node2:eth0:dhcp",
			want: IPConfig{DHCP: true, Interface: "eth0", Hostname: "node2"}, found: true},
		{name: "dhcp6", cmdline: "ip=dhcp6", found: true, err: errdefs.ErrUnsupported},
		{name: "autoconf auto6", cmdline: "ip=10.0.2.15::10.0.2.2:255.255.255.0::eth0:auto6", found: true, err: errdefs.ErrUnsupported},
		{name: "dhcp on a bad interface name", cmdline: "ip=../x:dhcp", found: true, err: errdefs.ErrInvalid},
		{name: "non-contiguous mask", cmdline: "ip=10.0.2.15::10.0.2.2:255.0.255.0::eth0:none", found: true, err: errdefs.ErrInvalid},
		{name: "IPv6 client", cmdline: "ip=fd00::2::fd00::1:64::eth0:none", found: true, err: errdefs.ErrInvalid},
		{name: "bad gateway", cmdline: "ip=10.0.2.15::gw:24::eth0:none", found: true, err: errdefs.ErrInvalid},
		{name: "interface with a slash", cmdline: "ip=10.0.2.15::10.0.2.2:24::../x:none", found: true, err: errdefs.ErrInvalid},
		{name: "after --", cmdline: "quiet -- ip=10.0.2.15::10.0.2.2:24::eth0:none"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, found, err := ParseIP(tc.cmdline)
			if found != tc.found || !errors.Is(err, tc.err) || (tc.err == nil) != (err == nil) {
				t.Fatalf("ParseIP(%q) = %v, %v; want found %v, error %v", tc.cmdline, found, err, tc.found, tc.err)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
				t.Errorf("ParseIP(%q) (-want +got):\n%s", tc.cmdline, diff)
			}
		})
	}
}
