package cli

import (
	"strings"
	"testing"
)

func TestVMUsage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"nothing to boot", nil, "need DISK.img (UEFI boot) or --kernel"},
		{"uefi and kernel", []string{"--uefi", "--kernel", "k"}, "--uefi and --kernel exclude each other"},
		{"initrd without kernel", []string{"d.img", "--initrd", "i"}, "--initrd and --append need --kernel"},
		{"two disks", []string{"a.img", "b.img"}, "unexpected argument \"b.img\""},
		{"bad marker", []string{"--kernel", "k", "--marker", "("}, "compiling marker pattern"},
		{"bad accel", []string{"--kernel", "k", "--accel", "xen"}, `accelerator "xen"`},
		{"bad forward", []string{"--kernel", "k", "--net", "--forward", "2222"}, `--forward "2222": want HOSTPORT:GUESTPORT`},
		{"forward without net", []string{"--kernel", "k", "--forward", "2222:22"}, "port forwards need the user network"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			args := append([]string{"vm"}, tc.args...)
			out, errOut, code := cmtRun(t, nil, args...)
			if code != exitUsage || out != "" || !strings.Contains(errOut, tc.want) {
				t.Errorf("strata %s = exit %d, stdout %q, stderr %q; want exit 2, no stdout, stderr containing %q", strings.Join(args, " "), code, out, errOut, tc.want)
			}
		})
	}
}
