package prepareroot

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func TestParseCmdline(t *testing.T) {
	t.Parallel()
	def := func(mod func(*Config)) Config {
		c := Config{Root: "/dev/vda", RootFSType: "ext4", Init: "/sbin/init", OnFail: FailPoweroff, Timeout: 10 * time.Second}
		if mod != nil {
			mod(&c)
		}
		return c
	}
	tests := []struct {
		name    string
		in      string
		want    Config
		wantErr string
	}{
		{"minimal", "root=/dev/vda\n", def(nil), ""},
		{"ostree boot entry",
			"BOOT_IMAGE=/vmlinuz console=ttyS0 root=LABEL=sysroot rw quiet ostree=/ostree/boot.1/os/abc/0",
			def(func(c *Config) { c.Root = "LABEL=sysroot"; c.OSTree = "/ostree/boot.1/os/abc/0" }), ""},
		{"every key",
			`root=PARTLABEL=root rootfstype=xfs rootflags=prjquota,noatime ro ostree=/ostree/deploy/os/deploy/aa.0 init=/usr/lib/systemd/systemd rd.break initrd.onfail=reboot rd.timeout=3`,
			Config{Root: "PARTLABEL=root", RootFSType: "xfs", RootFlags: "prjquota,noatime", ReadOnly: true,
				OSTree: "/ostree/deploy/os/deploy/aa.0", Init: "/usr/lib/systemd/systemd", Break: true,
				OnFail: FailReboot, Timeout: 3 * time.Second}, ""},
		{"last one wins", "root=/dev/sda ro root=/dev/vda rw", def(nil), ""},
		{"quoted value with a blank", `root="LABEL=my root" quiet`, def(func(c *Config) { c.Root = "LABEL=my root" }), ""},
		{"after -- belongs to init", "root=/dev/vda -- ostree=/x rd.break", def(nil), ""},
		{"rd.break=pre-pivot", "root=/dev/vda rd.break=pre-pivot", def(func(c *Config) { c.Break = true }), ""},
		{"rd.break=cmdline is another place", "root=/dev/vda rd.break=cmdline", def(nil), ""},
		{"onfail poweroff", "root=/dev/vda initrd.onfail=poweroff", def(nil), ""},
		{"unknown keys ignored", "root=/dev/vda systemd.mask=foo.service splash", def(nil), ""},
		{"rd.timeout=0", "root=/dev/vda rd.timeout=0", def(func(c *Config) { c.Timeout = 0 }), ""},
		{"no root", "console=ttyS0 ostree=/ostree/boot.1/os/abc/0", Config{}, "no root="},
		{"empty root", "root=", Config{}, "no root="},
		{"bad onfail", "root=/dev/vda initrd.onfail=halt", Config{}, `initrd.onfail="halt"`},
		{"bad timeout", "root=/dev/vda rd.timeout=10s", Config{}, `rd.timeout="10s"`},
		{"relative init", "root=/dev/vda init=sbin/init", Config{}, `init="sbin/init"`},
		{"empty rootfstype", "root=/dev/vda rootfstype=", Config{}, "rootfstype= is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseCmdline(tt.in)
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseCmdline(%q) = %v, want an ErrInvalid containing %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseCmdline(%q) = %v", tt.in, err)
			}
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("ParseCmdline(%q) mismatch (-want +got):\n%s", tt.in, d)
			}
		})
	}
}

func TestSplitCmdline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"blanks", "  a  b\tc\n", []string{"a", "b", "c"}},
		{"quoted value", `k="x y" z`, []string{"k=x y", "z"}},
		{"quoted whole arg", `"k=x y"`, []string{"k=x y"}},
		{"empty quotes", `k=""`, []string{"k="}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := splitCmdline(tt.in); !cmp.Equal(got, tt.want) {
				t.Errorf("splitCmdline(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}
