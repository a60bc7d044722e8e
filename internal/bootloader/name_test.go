package bootloader

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseName(t *testing.T) {
	t.Parallel()
	const id = "0123456789abcdef"
	tests := []struct {
		name string
		file string
		want Name
		ok   bool
	}{
		{"plain", "strata-7-os-" + id + ".conf", Name{Ord: 7, OS: "os", ID: id}, true},
		{"counter", "strata-12-os-" + id + "+3.conf", Name{Ord: 12, OS: "os", ID: id, Tries: Tries{Counted: true, Left: 3, Suffix: "+3"}}, true},
		{"counter with done", "strata-12-os-" + id + "+1-2.conf", Name{Ord: 12, OS: "os", ID: id, Tries: Tries{Counted: true, Left: 1, Done: 2, Suffix: "+1-2"}}, true},
		{"bad", "strata-3-os-" + id + "+0-3.conf", Name{Ord: 3, OS: "os", ID: id, Tries: Tries{Counted: true, Left: 0, Done: 3, Suffix: "+0-3"}}, true},
		{"stateroot with dashes", "strata-1-strata-minimal-" + id + ".conf", Name{Ord: 1, OS: "strata-minimal", ID: id}, true},
		{"foreign", "debian-6.1.conf", Name{}, false},
		{"not conf", "strata-1-os-" + id + ".conf.tmp", Name{}, false},
		{"short id", "strata-1-os-0123.conf", Name{}, false},
		{"uppercase id", "strata-1-os-0123456789ABCDEF.conf", Name{}, false},
		{"leading zero ord", "strata-07-os-" + id + ".conf", Name{}, false},
		{"no os", "strata-1-" + id + ".conf", Name{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseName(tt.file)
			if ok != tt.ok || !cmp.Equal(got, tt.want) {
				t.Errorf("ParseName(%q) = %+v, %v, want %+v, %v", tt.file, got, ok, tt.want, tt.ok)
			}
			if ok && got.String() != tt.file {
				t.Errorf("ParseName(%q).String() = %q, want the same name", tt.file, got.String())
			}
		})
	}
}

func TestVersionCompare(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		a, b string
		want int // sign
	}{
		{"equal", "strata-5-os", "strata-5-os", 0},
		{"numeric not lexical", "strata-10-os", "strata-9-os", 1},
		{"leading zeros ignored", "a-010", "a-10", 0},
		{"longer is newer", "1.2.3", "1.2", 1},
		{"tilde is older", "1.2~rc1", "1.2", -1},
		{"dash older than dot", "123-9", "123.1", -1},
		{"digits newer than letters", "1.2", "1.a", 1},
		{"letters", "abc", "abd", -1},
		{"invalid characters skipped", "+1", "1", 0},
		{"letter segments compare whole", "a+b", "ab", -1},
		{"conf names", "strata-12-os-aa.conf", "strata-11-os-ff.conf", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := sign(VersionCompare(tt.a, tt.b))
			if got != tt.want {
				t.Errorf("VersionCompare(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
			}
			if back := sign(VersionCompare(tt.b, tt.a)); back != -tt.want {
				t.Errorf("VersionCompare(%q, %q) = %d, want %d", tt.b, tt.a, back, -tt.want)
			}
		})
	}
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}
