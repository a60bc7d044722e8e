package bootloader

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
)

// ESPEntry is an entry strata wrote, found on an ESP.
type ESPEntry struct {
	Name
	File       string // file name in loader/entries
	Deployment string // "OS CHECKSUM.SERIAL" from its comment line; "" if none
	Linux      string // the linux path it names
	Initrd     string // the initrd path, "" if none
}

// Entries lists the entries strata wrote on the ESP at espDir, highest
// ORD first. Other files are ignored.
func Entries(espDir string) ([]ESPEntry, error) {
	var out []ESPEntry
	err := readEntryFiles(espDir, func(name string) bool { _, ok := ParseName(name); return ok },
		func(name string, data []byte) {
			n, _ := ParseName(name)
			kv := parseEntry(data)
			out = append(out, ESPEntry{Name: n, File: name, Deployment: entryDeployment(data), Linux: kv["linux"], Initrd: kv["initrd"]})
		})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b ESPEntry) int { return b.Ord - a.Ord })
	return out, nil
}

// readEntryFiles calls use with the name and content of each regular file
// of the ESP's loader/entries that keep accepts. No directory is no
// entries.
func readEntryFiles(espDir string, keep func(name string) bool, use func(name string, data []byte)) error {
	dir := filepath.Join(espDir, entriesDir)
	des, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading boot entries: %w", err)
	}
	for _, de := range des {
		if !de.Type().IsRegular() || !keep(de.Name()) {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, de.Name()))
		if err != nil {
			return fmt.Errorf("reading boot entry %s: %w", de.Name(), err)
		}
		use(de.Name(), data)
	}
	return nil
}

// FindDeployment returns the entry of deployment "OS CHECKSUM.SERIAL" with
// the largest ORD.
func FindDeployment(ents []ESPEntry, key string) (ESPEntry, bool) {
	for _, e := range ents {
		if e.Deployment == key {
			return e, true
		}
	}
	return ESPEntry{}, false
}

// findFile finds the entry file whose name without counter is base's.
func findFile(espDir, name string) (string, string, Tries, error) {
	want, _, ok := splitTries(name)
	if !ok {
		want, _, _ = splitTries(name + confSuffix)
	}
	dir := filepath.Join(espDir, entriesDir)
	des, err := os.ReadDir(dir)
	if err != nil {
		return "", "", Tries{}, fmt.Errorf("reading boot entries: %w", err)
	}
	for _, de := range des {
		base, t, ok := splitTries(de.Name())
		if ok && strings.EqualFold(base, want) {
			return de.Name(), base, t, nil
		}
	}
	return "", "", Tries{}, fmt.Errorf("boot entry %s: %w", name, errdefs.ErrNotFound)
}

// Bless marks the entry name (a file name in loader/entries, with or
// without its counter) good, as systemd-bless-boot good does: its counter
// is removed by a rename. An entry without counter is left as it is. It
// returns the entry's file name afterwards.
func Bless(espDir, name string) (string, error) {
	file, base, t, err := findFile(espDir, name)
	if err != nil {
		return "", err
	}
	if !t.Counted {
		return file, nil
	}
	return renameEntry(espDir, file, base+confSuffix)
}

// MarkBad marks the entry name bad, as systemd-bless-boot bad does: no
// tries left (+0-DONE), so that systemd-boot sorts it last.
func MarkBad(espDir, name string) (string, error) {
	file, base, t, err := findFile(espDir, name)
	if err != nil {
		return "", err
	}
	if t.Bad() {
		return file, nil
	}
	suffix := "+0"
	if t.Counted {
		suffix += "-" + strconv.Itoa(t.Done)
	}
	return renameEntry(espDir, file, base+suffix+confSuffix)
}

func renameEntry(espDir, from, to string) (string, error) {
	dir := filepath.Join(espDir, entriesDir)
	if err := os.Rename(filepath.Join(dir, from), filepath.Join(dir, to)); err != nil {
		return "", fmt.Errorf("renaming boot entry %s to %s: %w", from, to, err)
	}
	if err := syncRenamed(filepath.Join(dir, to)); err != nil {
		return "", err
	}
	if err := fsutil.FsyncDir(dir); err != nil {
		return "", err
	}
	return to, nil
}
