package sysroot

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
)

func TestEditKargs(t *testing.T) {
	t.Parallel()
	base := []string{"root=LABEL=root", "rw", "console=tty0", "console=ttyS0", "quiet"}
	tests := []struct {
		name    string
		edit    KargsEdit
		want    string
		wantErr error
	}{
		{"append keeps duplicates", KargsEdit{Append: []string{"console=hvc0", "rw"}}, "root=LABEL=root rw console=tty0 console=ttyS0 quiet console=hvc0 rw", nil},
		{"replace single value in place", KargsEdit{Replace: []string{"root=/dev/vda2"}}, "root=/dev/vda2 rw console=tty0 console=ttyS0 quiet", nil},
		{"replace one of several with OLD=NEW", KargsEdit{Replace: []string{"console=ttyS0=ttyS1"}}, "root=LABEL=root rw console=tty0 console=ttyS1 quiet", nil},
		{"replace ambiguous key", KargsEdit{Replace: []string{"console=ttyS1"}}, "", errdefs.ErrInvalid},
		{"replace missing key", KargsEdit{Replace: []string{"nope=1"}}, "", errdefs.ErrNotFound},
		{"delete by key", KargsEdit{Delete: []string{"quiet"}}, "root=LABEL=root rw console=tty0 console=ttyS0", nil},
		{"delete one value of several", KargsEdit{Delete: []string{"console=tty0"}}, "root=LABEL=root rw console=ttyS0 quiet", nil},
		{"delete ambiguous key", KargsEdit{Delete: []string{"console"}}, "", errdefs.ErrInvalid},
		{"delete wrong value", KargsEdit{Delete: []string{"root=/dev/sda"}}, "", errdefs.ErrNotFound},
		{"set replaces all values in place", KargsEdit{Set: []string{"console=hvc0"}}, "root=LABEL=root rw console=hvc0 quiet", nil},
		{"set appends a new key", KargsEdit{Set: []string{"x=1"}}, "root=LABEL=root rw console=tty0 console=ttyS0 quiet x=1", nil},
		{"delete then append", KargsEdit{Delete: []string{"rw"}, Append: []string{"ro"}}, "root=LABEL=root console=tty0 console=ttyS0 quiet ro", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := EditKargs(base, tt.edit)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("EditKargs(%+v) error = %v, want %v", tt.edit, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("EditKargs(%+v): %v", tt.edit, err)
			}
			if diff := cmp.Diff(tt.want, strings.Join(got, " ")); diff != "" {
				t.Errorf("EditKargs(%+v) mismatch (-want +got):\n%s", tt.edit, diff)
			}
		})
	}
	if strings.Join(base, " ") != "root=LABEL=root rw console=tty0 console=ttyS0 quiet" {
		t.Errorf("EditKargs modified its input: %q", base)
	}
}

func TestReplaceKargInPlace(t *testing.T) {
	t.Parallel()
	tests := []struct{ name, in, arg, want string }{
		{"replaces first, drops others", "a ostree=/x b ostree=/y c", "ostree=/z", "a ostree=/z b c"},
		{"appends a new key", "a b", "ostree=/z", "a b ostree=/z"},
		{"bare key placeholder", "a ostree b", "ostree=/z", "a ostree=/z b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := strings.Join(replaceKarg(splitOptions(tt.in), tt.arg), " "); got != tt.want {
				t.Errorf("replaceKarg(%q, %q) = %q, want %q", tt.in, tt.arg, got, tt.want)
			}
		})
	}
}

func TestValidateKargs(t *testing.T) {
	t.Parallel()
	for _, bad := range [][]string{{""}, {"a b"}, {"ostree=/x"}, {"x\ty"}} {
		if err := validateKargs(bad); !errors.Is(err, errdefs.ErrInvalid) {
			t.Errorf("validateKargs(%q) = %v, want ErrInvalid", bad, err)
		}
	}
	if err := validateKargs([]string{"root=LABEL=root", "rw"}); err != nil {
		t.Errorf("validateKargs(valid) = %v", err)
	}
}
