package sysroot

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// The entry ostree 2022.7 wrote in the sysroot transcript (docs/formats/sysroot.md).
const transcriptEntry = `title Fake OS 2 (ostree:0)
version 2
options root=LABEL=root rw ostree=/ostree/boot.0/fakeos/1bbb7d14720c044a6be64ccc93ca65d1800e7a7a709b96f4c903f2e75b1b469c/0
linux /ostree/fakeos-1bbb7d14720c044a6be64ccc93ca65d1800e7a7a709b96f4c903f2e75b1b469c/vmlinuz-5.10.0-fake
initrd /ostree/fakeos-1bbb7d14720c044a6be64ccc93ca65d1800e7a7a709b96f4c903f2e75b1b469c/initramfs-5.10.0-fake.img
`

func TestBLSRoundTrip(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
	}{
		{"transcript", transcriptEntry, transcriptEntry},
		{"reordered keys come back in libostree order",
			"linux /k\noptions a b\ntitle T\nversion 1\n",
			"title T\nversion 1\noptions a b\nlinux /k\n"},
		{"overlay initrds follow the first",
			"initrd /a\ninitrd /b\ntitle T\nfdtdir /d\n",
			"title T\ninitrd /a\ninitrd /b\nfdtdir /d\n"},
		{"comments, blanks and keys without value are dropped",
			"# comment\n\n  indented x\nversion 3\nlonely\n",
			"version 3\n"},
		{"tab separator and repeated key keep the last value",
			"title\tA\ntitle B\n",
			"title B\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := string(parseBLS([]byte(tt.in)).bytes())
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("parseBLS(%q).bytes() mismatch (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestBLSOstreeArg(t *testing.T) {
	t.Parallel()
	e := parseBLS([]byte(transcriptEntry))
	got, ok := e.ostreeArg()
	want := "/ostree/boot.0/fakeos/1bbb7d14720c044a6be64ccc93ca65d1800e7a7a709b96f4c903f2e75b1b469c/0"
	if !ok || got != want {
		t.Errorf("ostreeArg() = %q, %v, want %q, true", got, ok, want)
	}
	bl, err := parseBootLink(got)
	if err != nil || bl.bootversion != 0 || bl.osname != "fakeos" || bl.bootserial != 0 {
		t.Errorf("parseBootLink(%q) = %+v, %v", got, bl, err)
	}
	for _, bad := range []string{"/ostree/boot.2/os/c/0", "ostree/boot.0/os/c/0", "/ostree/boot.0/os/c/x", "/ostree/boot.0/os/c"} {
		if _, err := parseBootLink(bad); err == nil {
			t.Errorf("parseBootLink(%q) = nil error, want one", bad)
		}
	}
}

func TestStrverscmp(t *testing.T) {
	t.Parallel()
	// Ascending order per glibc's strverscmp(3) documentation and ostree's use.
	ordered := []string{"000", "00", "01", "010", "09", "0", "1", "2", "9", "10", "11", "100"}
	for i := range ordered {
		for j := range ordered {
			got := strverscmp(ordered[i], ordered[j])
			switch {
			case i < j && got >= 0, i > j && got <= 0, i == j && got != 0:
				t.Errorf("strverscmp(%q, %q) = %d, want sign %d", ordered[i], ordered[j], got, j-i)
			}
		}
	}
	if strverscmp("a2", "a10") >= 0 {
		t.Errorf("strverscmp(a2, a10) >= 0, want < 0")
	}
}
