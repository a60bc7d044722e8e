package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPlanGroups(t *testing.T) {
	t.Parallel()
	repoOp, sysOp := op{name: "commit"}, op{name: "deploy", sysroot: true}
	type g struct{ Label, Mode, Dir, Ops string }
	tests := []struct {
		name  string
		modes []string
		ops   []op
		want  []g
	}{
		{name: "repo ops per mode", modes: []string{"archive", "bare-user"}, ops: []op{repoOp},
			want: []g{{"archive", "archive", "archive", "commit"}, {"bare-user", "bare-user", "bare-user", "commit"}}},
		{name: "sysroot ops once, after the modes", modes: []string{"archive", "bare-user"}, ops: []op{repoOp, sysOp},
			want: []g{{"archive", "archive", "archive", "commit"}, {"bare-user", "bare-user", "bare-user", "commit"},
				{"sysroot (bare)", "bare", "sysroot", "deploy"}}},
		{name: "sysroot ops alone ignore the modes", modes: []string{"bare"}, ops: []op{sysOp},
			want: []g{{"sysroot (bare)", "bare", "sysroot", "deploy"}}},
		{name: "nothing", modes: []string{"bare"}, ops: nil, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []g
			for _, x := range planGroups(tt.modes, tt.ops) {
				var names []string
				for _, o := range x.ops {
					names = append(names, o.name)
				}
				got = append(got, g{x.label, x.mode, x.dir, strings.Join(names, ",")})
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("planGroups(%v, ...) mismatch (-want +got):\n%s", tt.modes, diff)
			}
		})
	}
}

func TestSysrootArgv(t *testing.T) {
	t.Parallel()
	s, o := strataCLI{bin: "strata"}, ostreeCLI{bin: "ostree"}
	kargs := []string{"a=1", "b=2"}
	tests := []struct {
		name      string
		got, want []string
	}{
		{"strata deploy", deployArgv(s, "S", "R", kargs), []string{"strata", "deploy", "--sysroot", "S", "--os", "bench", "R", "--karg", "a=1", "--karg", "b=2"}},
		{"strata deploy inheriting", deployArgv(s, "S", "R", nil), []string{"strata", "deploy", "--sysroot", "S", "--os", "bench", "R"}},
		{"ostree deploy", deployArgv(o, "S", "R", kargs), []string{"ostree", "admin", "deploy", "--sysroot=S", "--os=bench", "--karg=a=1", "--karg=b=2", "R"}},
		{"ostree deploy inheriting", deployArgv(o, "S", "R", nil), []string{"ostree", "admin", "deploy", "--sysroot=S", "--os=bench", "R"}},
		{"strata undeploy", undeployArgv(s, "S", 1), []string{"strata", "undeploy", "--sysroot", "S", "1"}},
		{"ostree undeploy", undeployArgv(o, "S", 1), []string{"ostree", "admin", "undeploy", "--sysroot=S", "1"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: argv = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestParseStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "two deployments in boot order",
			in: `{"sysroot":"S","deployments":[{"index":0,"osname":"bench","commit":"` + sumB + `","serial":0,"kargs":["a=1"],"path":"/S/ostree/deploy/bench/deploy/` + sumB + `.0"},` +
				`{"index":1,"osname":"bench","commit":"` + sumA + `","serial":1,"kargs":[],"path":"/S/ostree/deploy/bench/deploy/` + sumA + `.1"}]}`,
			want: sumB + ".0 " + sumA + ".1"},
		{name: "no deployments", in: `{"deployments":[]}`, want: "none"},
		{name: "no list", in: `{}`, wantErr: true},
		{name: "bad checksum", in: `{"deployments":[{"commit":"abc","path":"p"}]}`, wantErr: true},
		{name: "not json", in: `Deployments:`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ds, err := parseStatus([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatus(%.40q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if err == nil {
				if got := deploymentList(ds); got != tt.want {
					t.Errorf("deploymentList(parseStatus(%.40q)) = %q, want %q", tt.in, got, tt.want)
				}
			}
		})
	}
}

func TestCheckList(t *testing.T) {
	t.Parallel()
	ds := []statusDeployment{{OSName: "bench", Checksum: sumB}, {OSName: "bench", Checksum: sumA}}
	if err := checkList(ds, sumB, sumA); err != nil {
		t.Errorf("checkList(next, base; want next, base) = %v, want nil", err)
	}
	if err := checkList(ds, sumA, sumB); err == nil {
		t.Error("checkList(next, base; want base, next) = nil, want an order error")
	}
	ds[0].Serial = 1
	if err := checkList(ds, sumB, sumA); err == nil {
		t.Error("checkList(next.1, base.0; want serials 0) = nil, want an error")
	}
}

func TestFmtResult(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, want string }{
		{"checksum", sumA, sumA[:12]},
		{"deployment list", sumB + ".0 " + sumA + ".1", sumB[:12] + ".0 " + sumA[:12] + ".1"},
		{"entries", "20863 entries", "20863 entries"},
		{"longer hex stays", sumA + "ff", sumA + "ff"},
	}
	for _, tt := range tests {
		if got := fmtResult(tt.in); got != tt.want {
			t.Errorf("%s: fmtResult(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestMountsUnder(t *testing.T) {
	t.Parallel()
	info := `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
101 22 0:50 / /w/sysroot/run/boot rw,relatime shared:60 - tmpfs tmpfs rw,mode=755
102 101 0:51 / /w/sysroot/run/boot rw,relatime shared:61 - tmpfs tmpfs rw,mode=755
103 22 0:52 / /w/sysroot/run/boot/efi rw - vfat /dev/vdb1 rw
104 22 0:53 / /w/sysroot/runner rw - tmpfs tmpfs rw
105 22 0:54 / /w/sysroot/run/with\040space rw - tmpfs tmpfs rw
`
	got, err := mountsUnder(strings.NewReader(info), "/w/sysroot/run/")
	if err != nil {
		t.Fatal(err)
	}
	// Deepest first; of the two mounts on boot, the later (on top) first.
	want := []string{"/w/sysroot/run/boot/efi", "/w/sysroot/run/with space", "/w/sysroot/run/boot", "/w/sysroot/run/boot"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("mountsUnder(..., /w/sysroot/run/) mismatch (-want +got):\n%s", diff)
	}
	if got, err := mountsUnder(strings.NewReader(info), "/elsewhere"); err != nil || len(got) != 0 {
		t.Errorf("mountsUnder(..., /elsewhere) = %q, %v, want none", got, err)
	}
}

func TestSeededBytes(t *testing.T) {
	t.Parallel()
	read := func(seed uint64) []byte {
		b, err := io.ReadAll(io.LimitReader(seededBytes(seed), 4096))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if a, b := read(1), read(1); !bytes.Equal(a, b) || len(a) != 4096 {
		t.Errorf("seededBytes(1) gave different or short streams (%d, %d bytes)", len(a), len(b))
	}
	if bytes.Equal(read(1), read(2)) {
		t.Error("seededBytes(1) and seededBytes(2) are equal, want different streams")
	}
	if bytes.Count(read(1), []byte{0}) > 64 {
		t.Error("seededBytes(1) is mostly zeros, want random bytes")
	}
}
