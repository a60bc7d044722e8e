// Package keyfile reads and writes GLib key files (the INI dialect of
// ostree's repo `config`, remote sections and deployment `.origin` files),
// keeping comments, blank lines and the order of groups and keys so that a
// rewrite changes only what was set. Values are raw strings; GLib's escapes
// (\s \n \t \\) are decoded by Get and encoded by Set. Layer L0.
package keyfile

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

type line struct {
	group string // group the line belongs to ("" before the first)
	key   string // "" for comments, blanks and group headers
	raw   string
}

// File is a parsed key file.
type File struct{ lines []line }

// Parse parses key-file text.
func Parse(data []byte) (*File, error) {
	f := &File{}
	group := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		s := sc.Text()
		t := strings.TrimSpace(s)
		switch {
		case t == "" || t[0] == '#':
			f.lines = append(f.lines, line{group: group, raw: s})
		case t[0] == '[':
			if !strings.HasSuffix(t, "]") || len(t) < 3 {
				return nil, fmt.Errorf("key file line %d: bad group header %q: %w", n, t, errdefs.ErrInvalid)
			}
			group = t[1 : len(t)-1]
			f.lines = append(f.lines, line{group: group, raw: s})
		default:
			i := strings.IndexByte(t, '=')
			if i <= 0 {
				return nil, fmt.Errorf("key file line %d: expected key=value: %w", n, errdefs.ErrInvalid)
			}
			if group == "" {
				return nil, fmt.Errorf("key file line %d: key outside a group: %w", n, errdefs.ErrInvalid)
			}
			f.lines = append(f.lines, line{group: group, key: strings.TrimSpace(t[:i]), raw: s})
		}
	}
	return f, sc.Err()
}

// Bytes serializes the file.
func (f *File) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range f.lines {
		b.WriteString(l.raw)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// Groups lists group names in file order.
func (f *File) Groups() []string {
	var out []string
	for _, l := range f.lines {
		if l.key == "" && strings.HasPrefix(strings.TrimSpace(l.raw), "[") {
			out = append(out, l.group)
		}
	}
	return out
}

// Keys lists the keys of a group in file order.
func (f *File) Keys(group string) []string {
	var out []string
	for _, l := range f.lines {
		if l.group == group && l.key != "" {
			out = append(out, l.key)
		}
	}
	return out
}

// Get returns the unescaped value of group/key.
func (f *File) Get(group, key string) (string, bool) {
	for i := len(f.lines) - 1; i >= 0; i-- {
		l := f.lines[i]
		if l.group == group && l.key == key {
			v := l.raw[strings.IndexByte(l.raw, '=')+1:]
			return unescape(strings.TrimLeft(v, " \t")), true
		}
	}
	return "", false
}

// GetBool parses a GLib boolean ("true"/"false", also 1/0).
func (f *File) GetBool(group, key string, def bool) (bool, error) {
	v, ok := f.Get(group, key)
	if !ok {
		return def, nil
	}
	switch strings.TrimSpace(v) {
	case "true", "1":
		return true, nil
	case "false", "0":
		return false, nil
	}
	return def, fmt.Errorf("key %s.%s: %q is not a boolean: %w", group, key, v, errdefs.ErrInvalid)
}

// GetInt parses an integer value.
func (f *File) GetInt(group, key string, def int) (int, error) {
	v, ok := f.Get(group, key)
	if !ok {
		return def, nil
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil {
		return def, fmt.Errorf("key %s.%s: %q is not an integer: %w", group, key, v, errdefs.ErrInvalid)
	}
	return n, nil
}

// Set sets group/key, adding the group at the end if it is new.
func (f *File) Set(group, key, value string) {
	raw := key + "=" + escape(value)
	last := -1
	for i, l := range f.lines {
		if l.group == group {
			if l.key == key {
				f.lines[i].raw = raw
				return
			}
			if l.key != "" || strings.HasPrefix(strings.TrimSpace(l.raw), "[") {
				last = i
			}
		}
	}
	nl := line{group: group, key: key, raw: raw}
	if last < 0 {
		if len(f.lines) > 0 && strings.TrimSpace(f.lines[len(f.lines)-1].raw) != "" {
			f.lines = append(f.lines, line{group: f.lines[len(f.lines)-1].group})
		}
		f.lines = append(f.lines, line{group: group, raw: "[" + group + "]"}, nl)
		return
	}
	f.lines = append(f.lines[:last+1], append([]line{nl}, f.lines[last+1:]...)...)
}

// Delete removes a key; with key "" it removes the whole group.
func (f *File) Delete(group, key string) bool {
	out := f.lines[:0]
	found := false
	for _, l := range f.lines {
		if l.group == group && (key == "" || l.key == key) {
			found = true
			continue
		}
		out = append(out, l)
	}
	f.lines = out
	return found
}

func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func escape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == ' ' && i == 0:
			b.WriteString(`\s`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
