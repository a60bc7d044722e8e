package sysext

import (
	"errors"
	"testing"

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
