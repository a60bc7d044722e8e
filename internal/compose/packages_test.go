package compose

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

func TestCompareVersions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"1.0", "1.0", 0},
		{"1.0", "1.1", -1},
		{"1.10", "1.9", 1},
		{"1.0~rc1", "1.0", -1},
		{"1.0", "1.0+b1", -1},
		{"1:0.9", "2.0", 1},
		{"2.36-9", "2.36-10", -1},
		{"252.39-1~deb12u1", "252.39-1", -1},
		{"1.0a", "1.0+", -1},
		{"1.0-1", "1.0", 1},
		{"0:1.0", "1.0", 0},
		{"1.001", "1.1", 0},
	}
	for _, tc := range tests {
		if got := CompareVersions(tc.a, tc.b); got != tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := CompareVersions(tc.b, tc.a); got != -tc.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseDpkgStatus(t *testing.T) {
	t.Parallel()
	status := "Package: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13\n" +
		"Description: x\n continuation: not a field\n\n" +
		"Package: dpkg\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.21.22\n\n" +
		"Package: libc6\nStatus: install ok installed\nArchitecture: i386\nVersion: 2.36-9\n\n" +
		"Package: removed\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 1\n\n" +
		"Package: base-files\nStatus: install ok installed\nArchitecture: all\nVersion: 12.4\n"
	got, err := ParseDpkgStatus([]byte(status), "amd64")
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{{"base-files", "12.4"}, {"dpkg", "1.21.22"}, {"libc6:i386", "2.36-9"}, {"zlib1g", "1:1.2.13"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("ParseDpkgStatus() mismatch (-want +got):\n%s", d)
	}
}

func TestPackagesMetadataRoundTrip(t *testing.T) {
	t.Parallel()
	pkgs := []Package{{"a", "1"}, {"b", "2:3-4"}}
	md := ostree.Metadata{{Key: MetaPackages, Value: PackagesVariant(pkgs)}}
	// Through the wire format, as a commit stores it.
	data, err := md.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	back, err := ostree.ParseMetadata(data)
	if err != nil {
		t.Fatal(err)
	}
	got, ok, err := CommitPackages(back)
	if err != nil || !ok {
		t.Fatalf("CommitPackages() = %v, %v", ok, err)
	}
	if d := cmp.Diff(pkgs, got); d != "" {
		t.Errorf("CommitPackages() mismatch (-want +got):\n%s", d)
	}
	if _, ok, err := CommitPackages(nil); ok || err != nil {
		t.Errorf("CommitPackages(no key) = %v, %v, want false, nil", ok, err)
	}
	bad := ostree.Metadata{{Key: MetaPackages, Value: gvariant.NewVariant("as", []any{"a"})}}
	if _, _, err := CommitPackages(bad); err == nil {
		t.Errorf("CommitPackages(as) = nil error, want one")
	}
}

func TestDiffPackages(t *testing.T) {
	t.Parallel()
	a := []Package{{"bash", "5.2.15-2"}, {"gone", "1"}, {"libc6", "2.36-9"}, {"systemd", "252.39-1"}}
	b := []Package{{"bash", "5.2.15-2"}, {"jq", "1.6-2.1"}, {"less", "590-2"}, {"libc6", "2.36-10"}, {"systemd", "252.38-1"}}
	d := DiffPackages(a, b)
	want := PackageDiff{
		Added:      []Package{{"jq", "1.6-2.1"}, {"less", "590-2"}},
		Removed:    []Package{{"gone", "1"}},
		Upgraded:   []PackageChange{{"libc6", "2.36-9", "2.36-10"}},
		Downgraded: []PackageChange{{"systemd", "252.39-1", "252.38-1"}},
	}
	if diff := cmp.Diff(want, d); diff != "" {
		t.Errorf("DiffPackages() mismatch (-want +got):\n%s", diff)
	}
	wantText := "Upgraded:\n  libc6 2.36-9 -> 2.36-10\nDowngraded:\n  systemd 252.39-1 -> 252.38-1\n" +
		"Removed:\n  gone 1\nAdded:\n  jq 1.6-2.1\n  less 590-2\n"
	if got := d.Format(); got != wantText {
		t.Errorf("PackageDiff.Format() = %q, want %q", got, wantText)
	}
	if same := DiffPackages(a, a); !same.Empty() || same.Format() != "" {
		t.Errorf("DiffPackages(a, a) = %+v, want empty", same)
	}
}
