package bootloader

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// fwEntry is an entry as systemd-boot sees it.
type fwEntry struct {
	file    string // file name in loader/entries
	id      string // file name without counter, lowercased (the entry id)
	sortKey string
	version string
	tries   Tries
}

// FirmwareChoice returns the file name of the entry systemd-boot 252
// boots from the ESP at espDir without user input and without EFI
// variables set (LoaderEntryDefault, LoaderEntryOneShot): it reads
// loader/entries/*.conf (not names starting with "."), drops entries whose
// linux file is missing, sorts them (boot_entry_compare: entries without
// tries left last; then by sort-key, machine-id and version when both have
// a sort-key, an entry with one before an entry without; then by id,
// descending in version order; then more tries left, fewer done first),
// and picks the first whose id matches loader.conf's default pattern, or
// the first entry. No entry is errdefs.ErrNotFound.
func FirmwareChoice(espDir string) (string, error) {
	ents, err := firmwareEntries(espDir)
	if err != nil {
		return "", err
	}
	if len(ents) == 0 {
		return "", fmt.Errorf("no bootable entry in %s: %w", filepath.Join(espDir, entriesDir), errdefs.ErrNotFound)
	}
	slices.SortStableFunc(ents, compareEntries)
	pattern := loaderDefault(espDir)
	if pattern != "" {
		for _, e := range ents {
			if ok, _ := path.Match(strings.ToLower(pattern), e.id); ok {
				return e.file, nil
			}
		}
	}
	return ents[0].file, nil
}

func firmwareEntries(espDir string) ([]fwEntry, error) {
	var out []fwEntry
	keep := func(n string) bool {
		_, _, ok := splitTries(strings.ToLower(n))
		return ok && !strings.HasPrefix(n, ".")
	}
	err := readEntryFiles(espDir, keep, func(n string, data []byte) {
		base, t, _ := splitTries(strings.ToLower(n))
		kv := parseEntry(data)
		linux := kv["linux"]
		if linux == "" {
			return
		}
		if fi, err := os.Stat(filepath.Join(espDir, filepath.FromSlash(strings.TrimPrefix(linux, "/")))); err != nil || !fi.Mode().IsRegular() {
			return // systemd-boot skips an entry whose kernel it cannot open
		}
		out = append(out, fwEntry{file: n, id: base + confSuffix, sortKey: kv["sort-key"], version: kv["version"], tries: t})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// compareEntries is systemd-boot 252's boot_entry_compare.
func compareEntries(a, b fwEntry) int {
	if r := cmpBool(a.tries.Bad(), b.tries.Bad()); r != 0 {
		return r
	}
	if r := cmpBool(a.sortKey == "", b.sortKey == ""); r != 0 {
		return r
	}
	if a.sortKey != "" {
		if r := strings.Compare(a.sortKey, b.sortKey); r != 0 {
			return r
		}
		if r := -VersionCompare(a.version, b.version); r != 0 {
			return r
		}
	}
	if r := -VersionCompare(a.id, b.id); r != 0 {
		return r
	}
	if !a.tries.Counted || !b.tries.Counted {
		return 0
	}
	if r := -(a.tries.Left - b.tries.Left); r != 0 {
		return r
	}
	return a.tries.Done - b.tries.Done
}

func cmpBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// VersionCompare is systemd's strverscmp_improved (the UAPI version
// comparison): runs of digits compare as numbers, '~' sorts before
// anything, '-', '^' and '.' separate segments, other characters than
// letters, digits and those are skipped.
func VersionCompare(a, b string) int {
	valid := func(c byte) bool {
		return isAlpha(c) || isDigit(c) || strings.IndexByte("~-^.", c) >= 0
	}
	at := func(s string, i int) byte {
		if i < len(s) {
			return s[i]
		}
		return 0
	}
	i, j := 0, 0
	for {
		for i < len(a) && !valid(a[i]) {
			i++
		}
		for j < len(b) && !valid(b[j]) {
			j++
		}
		ca, cb := at(a, i), at(b, j)
		if ca == '~' || cb == '~' {
			if r := cmpBool(ca != '~', cb != '~'); r != 0 {
				return r
			}
			i, j = i+1, j+1
		}
		if i >= len(a) || j >= len(b) {
			return strings.Compare(a[min(i, len(a)):], b[min(j, len(b)):])
		}
		for _, sep := range []byte{'-', '^', '.'} {
			ca, cb = at(a, i), at(b, j)
			if ca == sep || cb == sep {
				if r := cmpBool(ca != sep, cb != sep); r != 0 {
					return r
				}
				i, j = i+1, j+1
			}
		}
		ca, cb = at(a, i), at(b, j)
		if isDigit(ca) || isDigit(cb) {
			ei, ej := i, j
			for ei < len(a) && isDigit(a[ei]) {
				ei++
			}
			for ej < len(b) && isDigit(b[ej]) {
				ej++
			}
			if r := cmpBool(i != ei, j != ej); r != 0 {
				return r // a numeric segment is newer than none
			}
			for i < ei && a[i] == '0' {
				i++
			}
			for j < ej && b[j] == '0' {
				j++
			}
			if r := (ei - i) - (ej - j); r != 0 {
				return r
			}
			if r := strings.Compare(a[i:ei], b[j:ej]); r != 0 {
				return r
			}
			i, j = ei, ej
			continue
		}
		ei, ej := i, j
		for ei < len(a) && isAlpha(a[ei]) {
			ei++
		}
		for ej < len(b) && isAlpha(b[ej]) {
			ej++
		}
		n := min(ei-i, ej-j)
		if r := strings.Compare(a[i:i+n], b[j:j+n]); r != 0 {
			return r
		}
		if r := (ei - i) - (ej - j); r != 0 {
			return r
		}
		// Zero-length segments (the next character is a separator) make
		// no progress here; the next round consumes the separator.
		i, j = ei, ej
	}
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// parseEntry reads "key value" lines of a BLS entry as systemd-boot does
// (config_entry_add_type1): blank lines and comments are skipped, key and
// value split at the first space or tab, and a repeated key keeps its last
// value (systemd-boot joins repeated options and collects every initrd;
// strata's entries have one of each).
func parseEntry(data []byte) map[string]string {
	kv := map[string]string{}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i <= 0 {
			continue
		}
		kv[line[:i]] = strings.TrimSpace(line[i+1:])
	}
	return kv
}

// loaderDefault returns the default pattern of loader/loader.conf, "" if
// none.
func loaderDefault(espDir string) string {
	data, err := os.ReadFile(filepath.Join(espDir, "loader/loader.conf"))
	if err != nil {
		return ""
	}
	var pattern string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) >= 2 && f[0] == "default" {
			pattern = f[1] // the last one wins, as systemd-boot reads it
		}
	}
	return pattern
}
