package vm

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func TestResolveAccel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		cfg     Accel
		env     string
		want    Accel
		wantErr bool
	}{
		{"auto is tcg", AccelAuto, "", AccelTCG, false},
		{"config kvm", AccelKVM, "", AccelKVM, false},
		{"env overrides config", AccelKVM, "tcg", AccelTCG, false},
		{"env kvm", AccelAuto, "kvm", AccelKVM, false},
		{"bad env", AccelAuto, "hvf", "", true},
		{"bad config", Accel("xen"), "", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := resolveAccel(tc.cfg, tc.env)
			if got != tc.want || (err != nil) != tc.wantErr {
				t.Errorf("resolveAccel(%q, %q) = %q, %v, want %q (error %v)", tc.cfg, tc.env, got, err, tc.want, tc.wantErr)
			}
		})
	}
}

func TestSMP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		want, cores int
		accel       Accel
		got         int
	}{
		{"default two", 0, 8, AccelTCG, 2},
		{"default on one core", 0, 1, AccelTCG, 1},
		{"tcg never overcommits", 4, 2, AccelTCG, 2},
		{"kvm may", 4, 2, AccelKVM, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := smp(tc.want, tc.cores, tc.accel); got != tc.got {
				t.Errorf("smp(%d, %d, %s) = %d, want %d", tc.want, tc.cores, tc.accel, got, tc.got)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	t.Parallel()
	common := []string{"-M", "q35", "-m", "1024", "-smp", "2", "-accel", "tcg,thread=multi", "-cpu", "max",
		"-nodefaults", "-no-user-config", "-display", "none"}
	serials := []string{"-chardev", "file,id=ttyS0,path=/r/console.log", "-serial", "chardev:ttyS0",
		"-chardev", "file,id=ttyS1,path=/r/m,,arks.log", "-serial", "chardev:ttyS1"}
	f := files{console: "/r/console.log", markers: "/r/m,arks.log", vars: "/r/vars.fd"}
	cat := func(parts ...[]string) []string {
		var a []string
		for _, p := range parts {
			a = append(a, p...)
		}
		return a
	}
	for _, tc := range []struct {
		name  string
		cfg   Config
		files files
		want  []string
	}{
		{
			name:  "direct boot",
			cfg:   Config{Kernel: "/k/vmlinux", Initrd: "/k/initrd", Append: "console=ttyS0"},
			files: f,
			want: cat(common, []string{"-no-reboot"}, serials,
				[]string{"-kernel", "/k/vmlinux", "-initrd", "/k/initrd", "-append", "console=ttyS0"}),
		},
		{
			name: "uefi, snapshot disk, net with forwards, reboots, control",
			cfg: Config{UEFI: &UEFI{}, Disks: []Disk{{Path: "/d/a.img", Snapshot: true}, {Path: "/d/b.qcow2", Format: "qcow2"}},
				Net: true, Forwards: []Forward{{HostPort: 2222, GuestPort: 22}, {HostPort: 8080, GuestPort: 80}},
				AllowReboot: true, MemoryMiB: 512, ExtraArgs: []string{"-S"}},
			files: files{console: f.console, markers: f.markers, vars: f.vars, control: "/r/control.sock"},
			want: cat([]string{"-M", "q35", "-m", "512"}, common[4:], serials,
				[]string{"-chardev", "socket,id=ttyS2,path=/r/control.sock", "-serial", "chardev:ttyS2",
					"-drive", "if=pflash,format=raw,unit=0,readonly=on,file=" + DefaultOVMFCode,
					"-drive", "if=pflash,format=raw,unit=1,file=/r/vars.fd",
					"-drive", "file=/d/a.img,if=virtio,format=raw,snapshot=on",
					"-drive", "file=/d/b.qcow2,if=virtio,format=qcow2",
					"-netdev", "user,id=n0,hostfwd=tcp:127.0.0.1:2222-:22,hostfwd=tcp:127.0.0.1:8080-:80",
					"-device", "virtio-net-pci,netdev=n0", "-S"}),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.cfg.validate(); err != nil {
				t.Fatalf("validate() = %v", err)
			}
			got := tc.cfg.args(AccelTCG, 2, tc.files)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("args() (-want +got):\n%s", diff)
			}
		})
	}
	kvm := (&Config{Kernel: "k"}).args(AccelKVM, 2, f)
	if !strings.Contains(strings.Join(kvm, " "), "-accel kvm -cpu host") {
		t.Errorf("args(kvm) = %v, want -accel kvm -cpu host", kvm)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"nothing to boot", Config{}},
		{"both uefi and kernel", Config{UEFI: &UEFI{}, Kernel: "k", Disks: []Disk{{Path: "d"}}}},
		{"uefi without disk", Config{UEFI: &UEFI{}}},
		{"initrd without kernel", Config{UEFI: &UEFI{}, Disks: []Disk{{Path: "d"}}, Initrd: "i"}},
		{"forward without net", Config{Kernel: "k", Forwards: []Forward{{HostPort: 2222, GuestPort: 22}}}},
		{"forward to port 0", Config{Kernel: "k", Net: true, Forwards: []Forward{{HostPort: 2222}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if err := tc.cfg.validate(); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("validate(%s) = %v, want ErrInvalid", tc.name, err)
			}
		})
	}
}
