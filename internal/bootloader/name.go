package bootloader

import (
	"regexp"
	"strconv"
	"strings"
)

// Name is the parsed file name of an entry strata wrote:
// strata-ORD-OS-ID[+LEFT[-DONE]].conf.
type Name struct {
	Ord int
	OS  string
	ID  string // idLen lowercase hex digits
	Tries
}

// Tries is the boot-counting suffix of an entry file name (docs/boot.md).
// Counted is false for an entry without suffix (a good entry).
type Tries struct {
	Counted bool
	Left    int
	Done    int
	// Suffix is the suffix as written ("+3", "+1-2", or ""), kept
	// verbatim on renames so that digit widths survive.
	Suffix string
}

// Bad reports whether the entry has no tries left: systemd-boot sorts it
// after every other entry.
func (t Tries) Bad() bool { return t.Counted && t.Left == 0 }

const (
	namePrefix = "strata-"
	confSuffix = ".conf"
	idLen      = 16
)

var (
	counterRE = regexp.MustCompile(`\+([0-9]+)(?:-([0-9]+))?$`)
	nameRE    = regexp.MustCompile(`^strata-([0-9]+)-(.+)-([0-9a-f]{16})$`)
)

// splitTries splits an entry file name into its base (without the
// counter and .conf) and its counter, as systemd-boot parses it. ok is
// false for a name that does not end in .conf.
func splitTries(file string) (base string, t Tries, ok bool) {
	stem, ok := strings.CutSuffix(file, confSuffix)
	if !ok {
		return "", Tries{}, false
	}
	m := counterRE.FindStringSubmatchIndex(stem)
	if m == nil {
		return stem, Tries{}, true
	}
	left, err1 := strconv.Atoi(stem[m[2]:m[3]])
	done := 0
	var err2 error
	if m[4] >= 0 {
		done, err2 = strconv.Atoi(stem[m[4]:m[5]])
	}
	if err1 != nil || err2 != nil {
		return stem, Tries{}, true
	}
	return stem[:m[0]], Tries{Counted: true, Left: left, Done: done, Suffix: stem[m[0]:]}, true
}

// ParseName parses the file name of an entry strata wrote; ok is false
// for any other file (foreign entries are left alone).
func ParseName(file string) (Name, bool) {
	base, t, ok := splitTries(file)
	if !ok {
		return Name{}, false
	}
	m := nameRE.FindStringSubmatch(base)
	if m == nil {
		return Name{}, false
	}
	ord, err := strconv.Atoi(m[1])
	if err != nil || m[1] != strconv.Itoa(ord) {
		return Name{}, false
	}
	return Name{Ord: ord, OS: m[2], ID: m[3], Tries: t}, true
}

// Base returns strata-ORD-OS-ID.
func (n Name) Base() string { return namePrefix + strconv.Itoa(n.Ord) + "-" + n.OS + "-" + n.ID }

// String returns the file name, counter included.
func (n Name) String() string { return n.Base() + n.Suffix + confSuffix }

// triesSuffix formats a fresh counter: +LEFT.
func triesSuffix(left int) string { return "+" + strconv.Itoa(left) }
