package cli

import (
	"slices"
	"strings"
	"testing"
)

func TestLiveOverlayIn(t *testing.T) {
	const live = "/var/lib/strata/layer/live"
	bind := "91 68 254:0 /ostree/deploy/os/deploy/abc.0/usr /usr ro,relatime shared:2 - ext4 /dev/vda rw\n"
	ours := "123 91 0:42 / /usr ro,relatime shared:3 - overlay overlay ro,lowerdir=" + live + "/def.0:/usr,redirect_dir=on\n"
	sysext := "124 123 0:43 / /usr ro,relatime - overlay sysext ro,lowerdir=/run/systemd/sysext/meta/usr:/usr\n"
	for _, tc := range []struct {
		name, table, top string
		ok               bool
	}{
		{"bind only", bind, "", false},
		{"live overlay on top", bind + ours, live + "/def.0", true},
		{"another overlay on top of it", bind + ours + sysext, "", false},
		{"elsewhere", strings.ReplaceAll(bind+ours, " /usr ", " /srv "), "", false},
	} {
		top, ok, err := liveOverlayIn(strings.NewReader(tc.table), "/usr", live)
		if err != nil || ok != tc.ok || top != tc.top {
			t.Errorf("%s: liveOverlayIn = %q, %v, %v; want %q, %v", tc.name, top, ok, err, tc.top, tc.ok)
		}
	}
	// A layer whose path holds a comma, a colon, a backslash and a space, as the kernel lists
	// it: the overlay's own escapes (backslashes) under the table's octal ones.
	odd := "/s y,s:\\x/lib/strata/layer/live"
	table := bind + "125 91 0:44 / /usr ro,relatime - overlay overlay ro," +
		`lowerdir=/s\040y\134\054s\134:\134\134x/lib/strata/layer/live/def.0:/usr,redirect_dir=on` + "\n"
	if top, ok, err := liveOverlayIn(strings.NewReader(table), "/usr", odd); err != nil || !ok || top != odd+"/def.0" {
		t.Errorf("escaped path: liveOverlayIn = %q, %v, %v; want %q", top, ok, err, odd+"/def.0")
	}
}

func TestParents(t *testing.T) {
	if got := parents("/a/b/c"); !slices.Equal(got, []string{"/a", "/a/b"}) {
		t.Errorf("parents(/a/b/c) = %v", got)
	}
	if got := parents("/a"); len(got) != 0 {
		t.Errorf("parents(/a) = %v, want none", got)
	}
}
