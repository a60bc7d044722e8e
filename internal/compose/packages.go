package compose

import (
	"bufio"
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

// MetaPackages is the commit metadata key of the installed packages: type
// a(ss), (name, version) sorted by name. A package of a foreign
// architecture is named "name:arch".
const MetaPackages = "strata.packages"

// MetaName is the commit metadata key of the manifest's name (s).
const MetaName = "strata.compose.name"

// MetaKernelArgs is the commit metadata key of the default kernel
// arguments (as), present when the manifest has kernel-args.
const MetaKernelArgs = "strata.kargs"

// Package is one installed Debian package.
type Package struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// ParseDpkgStatus lists the installed packages of a dpkg status file
// (var/lib/dpkg/status), sorted by name. nativeArch names the tree's
// architecture; packages of other architectures get ":arch" appended.
func ParseDpkgStatus(data []byte, nativeArch string) ([]Package, error) {
	var out []Package
	var name, version, arch, status string
	flush := func() {
		if name != "" && strings.HasSuffix(status, " installed") {
			if arch != "" && arch != "all" && nativeArch != "" && arch != nativeArch {
				name += ":" + arch
			}
			out = append(out, Package{Name: name, Version: version})
		}
		name, version, arch, status = "", "", "", ""
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || line[0] == ' ' || line[0] == '\t' {
			continue
		}
		v = strings.TrimSpace(v)
		switch k {
		case "Package":
			name = v
		case "Version":
			version = v
		case "Architecture":
			arch = v
		case "Status":
			status = v
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading dpkg status: %w", err)
	}
	flush()
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// PackagesVariant encodes packages (sorted by name) as the a(ss) value of
// MetaPackages.
func PackagesVariant(pkgs []Package) gvariant.Variant {
	list := make([]any, len(pkgs))
	for i, p := range pkgs {
		list[i] = gvariant.Tuple{p.Name, p.Version}
	}
	return gvariant.NewVariant("a(ss)", list)
}

// CommitPackages reads MetaPackages from commit metadata; ok is false when
// the commit has none (not made by compose).
func CommitPackages(m ostree.Metadata) (pkgs []Package, ok bool, err error) {
	v, ok := m.Get(MetaPackages)
	if !ok {
		return nil, false, nil
	}
	list, good := v.Value.([]any)
	if v.Type.String() != "a(ss)" || !good {
		return nil, true, fmt.Errorf("metadata %s has type %s, want a(ss): %w", MetaPackages, v.Type, errdefs.ErrCorrupt)
	}
	for _, e := range list {
		t, good := e.(gvariant.Tuple)
		if !good || len(t) != 2 {
			return nil, true, fmt.Errorf("metadata %s: bad element: %w", MetaPackages, errdefs.ErrCorrupt)
		}
		n, _ := t[0].(string)
		ver, _ := t[1].(string)
		pkgs = append(pkgs, Package{Name: n, Version: ver})
	}
	return pkgs, true, nil
}

// PackageChange is a package present in both lists with another version.
type PackageChange struct {
	Name       string `json:"name"`
	OldVersion string `json:"old_version"`
	NewVersion string `json:"new_version"`
}

// PackageDiff is the difference between two package lists, each part
// sorted by name.
type PackageDiff struct {
	Added      []Package       `json:"added"`
	Removed    []Package       `json:"removed"`
	Upgraded   []PackageChange `json:"upgraded"`
	Downgraded []PackageChange `json:"downgraded"`
}

// Empty reports whether the lists were equal.
func (d PackageDiff) Empty() bool {
	return len(d.Added)+len(d.Removed)+len(d.Upgraded)+len(d.Downgraded) == 0
}

// DiffPackages compares package lists a (old) and b (new); versions are
// ordered as dpkg orders them.
func DiffPackages(a, b []Package) PackageDiff {
	d := PackageDiff{Added: []Package{}, Removed: []Package{}, Upgraded: []PackageChange{}, Downgraded: []PackageChange{}}
	old := map[string]string{}
	for _, p := range a {
		old[p.Name] = p.Version
	}
	now := map[string]bool{}
	for _, p := range b {
		now[p.Name] = true
		ov, ok := old[p.Name]
		switch {
		case !ok:
			d.Added = append(d.Added, p)
		case ov == p.Version:
		case CompareVersions(ov, p.Version) < 0:
			d.Upgraded = append(d.Upgraded, PackageChange{Name: p.Name, OldVersion: ov, NewVersion: p.Version})
		default:
			d.Downgraded = append(d.Downgraded, PackageChange{Name: p.Name, OldVersion: ov, NewVersion: p.Version})
		}
	}
	for _, p := range a {
		if !now[p.Name] {
			d.Removed = append(d.Removed, p)
		}
	}
	sort.Slice(d.Added, func(i, j int) bool { return d.Added[i].Name < d.Added[j].Name })
	sort.Slice(d.Removed, func(i, j int) bool { return d.Removed[i].Name < d.Removed[j].Name })
	sort.Slice(d.Upgraded, func(i, j int) bool { return d.Upgraded[i].Name < d.Upgraded[j].Name })
	sort.Slice(d.Downgraded, func(i, j int) bool { return d.Downgraded[i].Name < d.Downgraded[j].Name })
	return d
}

// Format renders d as text: one section per kind of change, like
// rpm-ostree db diff.
func (d PackageDiff) Format() string {
	var b strings.Builder
	section := func(title string, n int, line func(i int) string) {
		if n == 0 {
			return
		}
		fmt.Fprintf(&b, "%s:\n", title)
		for i := range n {
			fmt.Fprintf(&b, "  %s\n", line(i))
		}
	}
	section("Upgraded", len(d.Upgraded), func(i int) string {
		c := d.Upgraded[i]
		return c.Name + " " + c.OldVersion + " -> " + c.NewVersion
	})
	section("Downgraded", len(d.Downgraded), func(i int) string {
		c := d.Downgraded[i]
		return c.Name + " " + c.OldVersion + " -> " + c.NewVersion
	})
	section("Removed", len(d.Removed), func(i int) string { return d.Removed[i].Name + " " + d.Removed[i].Version })
	section("Added", len(d.Added), func(i int) string { return d.Added[i].Name + " " + d.Added[i].Version })
	return b.String()
}

// CompareVersions orders two Debian versions as dpkg --compare-versions
// does (deb-version(7)): epoch numerically, then upstream version and
// revision with the "~ sorts first, letters before other characters"
// rule. It returns -1, 0 or +1.
func CompareVersions(a, b string) int {
	ea, ua, ra := splitVersion(a)
	eb, ub, rb := splitVersion(b)
	if c := compareNum(ea, eb); c != 0 {
		return c
	}
	if c := compareFragment(ua, ub); c != 0 {
		return c
	}
	return compareFragment(ra, rb)
}

func splitVersion(v string) (epoch, upstream, revision string) {
	if e, rest, ok := strings.Cut(v, ":"); ok {
		epoch, v = e, rest
	}
	if i := strings.LastIndexByte(v, '-'); i >= 0 {
		return epoch, v[:i], v[i+1:]
	}
	return epoch, v, ""
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func order(c byte) int {
	switch {
	case c == '~':
		return -1
	case isDigit(c):
		return 0
	case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
		return int(c)
	default:
		return int(c) + 256
	}
}

func compareNum(a, b string) int {
	a, b = strings.TrimLeft(a, "0"), strings.TrimLeft(b, "0")
	if len(a) != len(b) {
		if len(a) < len(b) {
			return -1
		}
		return 1
	}
	return strings.Compare(a, b)
}

func compareFragment(a, b string) int {
	for a != "" || b != "" {
		// Non-digit prefix, character by character.
		for (a != "" && !isDigit(a[0])) || (b != "" && !isDigit(b[0])) {
			var ca, cb int
			if a != "" && !isDigit(a[0]) {
				ca = order(a[0])
			}
			if b != "" && !isDigit(b[0]) {
				cb = order(b[0])
			}
			if ca != cb {
				if ca < cb {
					return -1
				}
				return 1
			}
			if a != "" && !isDigit(a[0]) {
				a = a[1:]
			}
			if b != "" && !isDigit(b[0]) {
				b = b[1:]
			}
		}
		i := 0
		for i < len(a) && isDigit(a[i]) {
			i++
		}
		j := 0
		for j < len(b) && isDigit(b[j]) {
			j++
		}
		if c := compareNum(a[:i], b[:j]); c != 0 {
			return c
		}
		a, b = a[i:], b[j:]
	}
	return 0
}
