package osrelease

import (
	"fmt"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// MaxSize bounds an os-release or extension-release file read from an image,
// a commit or a tree; real ones are under 1 KiB.
const MaxSize = 64 << 10

// Values are the fields of an os-release file.
type Values map[string]string

// Parse reads KEY=VALUE lines, skipping blank lines and comments, as
// systemd's parse_env_file does for os-release: a value may be quoted
// with '…' or "…" (\ escaping " \ $ ` inside double quotes) or unquoted
// (\ escapes the next character). The last assignment of a key wins. A
// line without "=", a key that is not [A-Za-z_][A-Za-z0-9_]*, or an
// unterminated quote is errdefs.ErrInvalid naming the line.
func Parse(data []byte) (Values, error) {
	if len(data) > MaxSize {
		return nil, fmt.Errorf("os-release of %d bytes, more than %d: %w", len(data), MaxSize, errdefs.ErrInvalid)
	}
	out := Values{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		k = strings.TrimSpace(k)
		if !ok || !validKey(k) {
			return nil, fmt.Errorf("os-release line %d: not KEY=VALUE: %w", i+1, errdefs.ErrInvalid)
		}
		u, err := unquote(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("os-release line %d (%s): %w", i+1, k, err)
		}
		out[k] = u
	}
	return out, nil
}

func validKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z':
		case c >= '0' && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

func unquote(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return "", fmt.Errorf("unterminated ' quote: %w", errdefs.ErrInvalid)
			}
			b.WriteString(s[i+1 : i+1+j])
			i += j + 1
		case '"':
			closed := false
			for i++; i < len(s); i++ {
				if s[i] == '"' {
					closed = true
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
			if !closed {
				return "", fmt.Errorf("unterminated \" quote: %w", errdefs.ErrInvalid)
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// Marshal writes v as KEY="VALUE" lines sorted by key, quoting every
// value so that Parse reads back exactly v. Keys must be valid names.
func Marshal(v Values) ([]byte, error) {
	keys := make([]string, 0, len(v))
	for k := range v {
		if !validKey(k) {
			return nil, fmt.Errorf("os-release key %q: %w", k, errdefs.ErrInvalid)
		}
		if strings.ContainsAny(v[k], "\n\r\x00") {
			return nil, fmt.Errorf("os-release value of %s holds a line break or NUL: %w", k, errdefs.ErrInvalid)
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteString(`="`)
		for _, c := range []byte(v[k]) {
			if strings.IndexByte("\"\\$`", c) >= 0 {
				b.WriteByte('\\')
			}
			b.WriteByte(c)
		}
		b.WriteString("\"\n")
	}
	return []byte(b.String()), nil
}
