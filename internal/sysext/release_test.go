package sysext

import (
	"errors"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/osrelease"
)

func TestMatch(t *testing.T) {
	t.Parallel()
	deb12 := osrelease.Values{"ID": "debian", "VERSION_ID": "12"}
	leveled := osrelease.Values{"ID": "debian", "VERSION_ID": "12", "SYSEXT_LEVEL": "1.0"}
	rolling := osrelease.Values{"ID": "arch"}
	for _, tc := range []struct {
		name string
		ext  osrelease.Values
		host osrelease.Values
		ok   bool
	}{
		{"same version", osrelease.Values{"ID": "debian", "VERSION_ID": "12"}, deb12, true},
		{"other version", osrelease.Values{"ID": "debian", "VERSION_ID": "13"}, deb12, false},
		{"other ID", osrelease.Values{"ID": "fedora", "VERSION_ID": "12"}, deb12, false},
		{"no ID", osrelease.Values{"VERSION_ID": "12"}, deb12, false},
		{"any ID skips versions", osrelease.Values{"ID": "_any", "VERSION_ID": "99"}, deb12, true},
		{"level matches", osrelease.Values{"ID": "debian", "SYSEXT_LEVEL": "1.0"}, leveled, true},
		{"level differs", osrelease.Values{"ID": "debian", "SYSEXT_LEVEL": "2.0", "VERSION_ID": "12"}, leveled, false},
		{"level only, host has none", osrelease.Values{"ID": "debian", "SYSEXT_LEVEL": "1.0"}, deb12, false},
		{"host level, extension version", osrelease.Values{"ID": "debian", "VERSION_ID": "12"}, leveled, true},
		{"rolling host", osrelease.Values{"ID": "arch", "VERSION_ID": "1"}, rolling, true},
		{"arch matches", osrelease.Values{"ID": "debian", "VERSION_ID": "12", "ARCHITECTURE": "x86-64"}, deb12, true},
		{"arch any", osrelease.Values{"ID": "debian", "VERSION_ID": "12", "ARCHITECTURE": "_any"}, deb12, true},
		{"arch differs", osrelease.Values{"ID": "debian", "VERSION_ID": "12", "ARCHITECTURE": "arm64"}, deb12, false},
		{"initrd scope only", osrelease.Values{"ID": "debian", "VERSION_ID": "12", "SYSEXT_SCOPE": "initrd"}, deb12, false},
		{"system scope", osrelease.Values{"ID": "debian", "VERSION_ID": "12", "SYSEXT_SCOPE": "initrd system"}, deb12, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Match(tc.ext, tc.host, "x86-64")
			if tc.ok && err != nil {
				t.Errorf("Match(%v, %v) = %v, want nil", tc.ext, tc.host, err)
			}
			if !tc.ok && !errors.Is(err, ErrMismatch) {
				t.Errorf("Match(%v, %v) = %v, want ErrMismatch", tc.ext, tc.host, err)
			}
		})
	}
}

// TestCheckNameAndVersionLengths: names of up to 128 characters and levels of up to 64 pass,
// one more is refused, and the alphabet is still enforced at any length.
func TestCheckNameAndVersionLengths(t *testing.T) {
	long := func(first string, n int) string { return first + strings.Repeat("a", n-1) }
	if err := CheckName(long("A", 128)); err != nil {
		t.Errorf("128-character name refused: %v", err)
	}
	for _, bad := range []string{long("A", 129), "", ".hidden", "a/b", "ok.raw", "a b"} {
		if err := CheckName(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := CheckVersion("VERSION_ID", long("1", 64)); err != nil {
		t.Errorf("64-character level refused: %v", err)
	}
	for _, bad := range []string{long("1", 65), "", "-1", "A1", "1/2"} {
		if err := CheckVersion("VERSION_ID", bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("CheckVersion(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}
