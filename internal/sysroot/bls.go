package sysroot

import (
	"strings"
)

// blsEntry is a Boot Loader Specification type #1 entry as libostree reads
// and writes it (ostree-bootconfig-parser.c, docs/formats/sysroot.md): "key value"
// lines; a repeated initrd key holds overlay initrds; other repeated keys
// keep the last value.
type blsEntry struct {
	keys   []string          // first-seen order of the keys in vals
	vals   map[string]string // key → value
	extraI []string          // overlay initrds (second and later initrd lines)
}

func newBLSEntry() *blsEntry { return &blsEntry{vals: map[string]string{}} }

// parseBLS parses entry text. Lines that do not start with an ASCII letter
// are ignored (comments, blank lines); a line splits at its first space
// or tab into key and value, and a line without separator is ignored, as
// libostree does.
func parseBLS(data []byte) *blsEntry {
	e := newBLSEntry()
	for _, line := range strings.Split(string(data), "\n") {
		if line == "" || !isASCIIAlpha(line[0]) {
			continue
		}
		i := strings.IndexAny(line, " \t")
		if i <= 0 {
			continue
		}
		k, v := line[:i], line[i+1:]
		if k == "initrd" {
			if _, ok := e.vals["initrd"]; ok {
				e.extraI = append(e.extraI, v)
				continue
			}
		}
		e.set(k, v)
	}
	return e
}

func isASCIIAlpha(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func (e *blsEntry) get(k string) (string, bool) {
	v, ok := e.vals[k]
	return v, ok
}

func (e *blsEntry) set(k, v string) {
	if _, ok := e.vals[k]; !ok {
		e.keys = append(e.keys, k)
	}
	e.vals[k] = v
}

// blsKeyOrder is the order libostree writes the well-known keys in.
var blsKeyOrder = []string{"title", "version", "options", "devicetree", "linux", "initrd"}

// bytes serializes the entry: the well-known keys in libostree's order,
// then overlay initrds, then every other key. libostree writes the other
// keys in hash-table order; strata writes them in the order they were
// first set, which is the same for the single extra key libostree itself
// ever adds (fdtdir). A control character in a key or value (a commit's
// version or a tree's PRETTY_NAME in the title) is written as \xNN: raw, a
// newline would add a line, such as an options line systemd-boot appends
// to the kernel command line.
func (e *blsEntry) bytes() []byte {
	var b strings.Builder
	written := map[string]bool{}
	for _, k := range blsKeyOrder {
		if v, ok := e.vals[k]; ok {
			b.WriteString(escapeControl(k) + " " + escapeControl(v) + "\n")
			written[k] = true
		}
	}
	if written["initrd"] {
		for _, v := range e.extraI {
			b.WriteString("initrd " + escapeControl(v) + "\n")
		}
	}
	for _, k := range e.keys {
		if !written[k] {
			b.WriteString(escapeControl(k) + " " + escapeControl(e.vals[k]) + "\n")
		}
	}
	return []byte(b.String())
}

// ostreeArg returns the value of the ostree= argument in the entry's
// options (the first one, as libostree reads it).
func (e *blsEntry) ostreeArg() (string, bool) {
	for _, a := range strings.Split(e.vals["options"], " ") {
		if v, ok := strings.CutPrefix(a, "ostree="); ok {
			return v, true
		}
	}
	return "", false
}

// strverscmp compares like glibc's strverscmp(3), which libostree uses to
// sort entries by their version key: runs of digits compare as numbers,
// except that runs with leading zeros compare as fractions.
func strverscmp(a, b string) int {
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		ca, cb := a[i], b[j]
		if isDigit(ca) && isDigit(cb) {
			si, sj := i, j
			for i < len(a) && isDigit(a[i]) {
				i++
			}
			for j < len(b) && isDigit(b[j]) {
				j++
			}
			if c := cmpDigits(a[si:i], b[sj:j]); c != 0 {
				return c
			}
			continue
		}
		if ca != cb {
			return int(ca) - int(cb)
		}
		i++
		j++
	}
	return (len(a) - i) - (len(b) - j)
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// cmpDigits compares two digit runs as strverscmp does: a run of more
// than one digit with a leading zero is a fraction and sorts before any
// integral run; integral runs compare as numbers; fractions compare by
// leading zeros (more is smaller), then digit by digit, a prefix first.
func cmpDigits(x, y string) int {
	fx := len(x) > 1 && x[0] == '0'
	fy := len(y) > 1 && y[0] == '0'
	switch {
	case fx && fy:
		zx := len(x) - len(strings.TrimLeft(x, "0"))
		zy := len(y) - len(strings.TrimLeft(y, "0"))
		if zx != zy {
			return zy - zx
		}
		return strings.Compare(x, y)
	case fx:
		return -1
	case fy:
		return 1
	}
	if len(x) != len(y) {
		return len(x) - len(y)
	}
	return strings.Compare(x, y)
}
