package repo

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/strata-os/strata/internal/gvariant"
)

// FormatVariant renders a value in the GVariant text format, as GLib's
// g_variant_print(value, TRUE) does, which is how `ostree show` prints
// metadata values: 'string', uint64 42, true, [byte 0x01, 0x02],
// b'bytestring', ['a', 'b'], {'k': <1>}, @as [].
//
// Unlike `ostree show`, which byte-swaps whole commits before printing,
// integers are shown with their real (little-endian) values.
func FormatVariant(v gvariant.Variant) string {
	var b strings.Builder
	gvFormatValue(&b, v.Type, v.Value, true)
	return b.String()
}

func gvFormatValue(b *strings.Builder, t *gvariant.Type, v any, annotate bool) {
	switch t.Kind() {
	case 'b':
		b.WriteString(strconv.FormatBool(v.(bool)))
	case 'y':
		if annotate {
			b.WriteString("byte ")
		}
		fmt.Fprintf(b, "0x%02x", v.(uint8))
	case 'n':
		gvAnnotated(b, annotate, "int16 ", strconv.FormatInt(int64(v.(int16)), 10))
	case 'q':
		gvAnnotated(b, annotate, "uint16 ", strconv.FormatUint(uint64(v.(uint16)), 10))
	case 'i':
		// int32 is the default type of a number, never gvAnnotated.
		b.WriteString(strconv.FormatInt(int64(v.(int32)), 10))
	case 'h':
		gvAnnotated(b, annotate, "handle ", strconv.FormatInt(int64(v.(int32)), 10))
	case 'u':
		gvAnnotated(b, annotate, "uint32 ", strconv.FormatUint(uint64(v.(uint32)), 10))
	case 'x':
		gvAnnotated(b, annotate, "int64 ", strconv.FormatInt(v.(int64), 10))
	case 't':
		gvAnnotated(b, annotate, "uint64 ", strconv.FormatUint(v.(uint64), 10))
	case 'd':
		// g_ascii_dtostr is "%.17g"; a '.' or 'e' is added when missing.
		s := strconv.FormatFloat(v.(float64), 'g', 17, 64)
		if !strings.ContainsAny(s, ".eEnN") {
			s += ".0"
		}
		b.WriteString(s)
	case 's':
		gvQuoteString(b, v.(string))
	case 'o':
		gvAnnotated(b, annotate, "objectpath ", "'"+v.(string)+"'")
	case 'g':
		gvAnnotated(b, annotate, "signature ", "'"+v.(string)+"'")
	case 'v':
		vv := v.(gvariant.Variant)
		b.WriteByte('<')
		gvFormatValue(b, vv.Type, vv.Value, true)
		b.WriteByte('>')
	case 'm':
		gvFormatMaybe(b, t, v.(gvariant.Maybe), annotate)
	case 'a':
		gvFormatArray(b, t, v, annotate)
	case '(':
		fields, tu := t.Fields(), v.(gvariant.Tuple)
		b.WriteByte('(')
		for i := range tu {
			if i > 0 {
				b.WriteString(", ")
			}
			gvFormatValue(b, fields[i], tu[i], annotate)
		}
		if len(tu) == 1 {
			b.WriteByte(',')
		}
		b.WriteByte(')')
	case '{':
		fields, e := t.Fields(), v.(gvariant.DictEntry)
		b.WriteByte('{')
		gvFormatValue(b, fields[0], e.Key, annotate)
		b.WriteString(", ")
		gvFormatValue(b, fields[1], e.Value, annotate)
		b.WriteByte('}')
	default:
		fmt.Fprintf(b, "<unprintable %s>", t)
	}
}

func gvAnnotated(b *strings.Builder, annotate bool, prefix, s string) {
	if annotate {
		b.WriteString(prefix)
	}
	b.WriteString(s)
}

func gvFormatMaybe(b *strings.Builder, t *gvariant.Type, m gvariant.Maybe, annotate bool) {
	if annotate {
		b.WriteString("@" + t.String() + " ")
	}
	if !m.Valid {
		b.WriteString("nothing")
		return
	}
	// GLib drops "just" unless the child itself ends in "nothing".
	var child strings.Builder
	gvFormatValue(&child, t.Elem(), m.Value, false)
	if strings.HasSuffix(child.String(), "nothing") {
		b.WriteString("just ")
	}
	b.WriteString(child.String())
}

func gvFormatArray(b *strings.Builder, t *gvariant.Type, v any, annotate bool) {
	elem := t.Elem()
	if elem.Kind() == 'y' {
		bs := v.([]byte)
		// A bytestring: the only NUL is the last byte.
		if i := strings.IndexByte(string(bs), 0); i >= 0 && i == len(bs)-1 {
			s := string(bs[:i])
			q := byte('\'')
			if strings.IndexByte(s, '\'') >= 0 {
				q = '"'
			}
			b.WriteString("b" + string(q) + gvStrescape(s) + string(q))
			return
		}
		if len(bs) == 0 {
			gvEmptyArray(b, t, annotate, "[]")
			return
		}
		b.WriteByte('[')
		for i, x := range bs {
			if i > 0 {
				b.WriteString(", ")
			}
			gvFormatValue(b, elem, x, annotate && i == 0)
		}
		b.WriteByte(']')
		return
	}
	if elem.Kind() == '{' {
		es := v.([]gvariant.DictEntry)
		if len(es) == 0 {
			gvEmptyArray(b, t, annotate, "{}")
			return
		}
		kv := elem.Fields()
		b.WriteByte('{')
		for i, e := range es {
			if i > 0 {
				b.WriteString(", ")
			}
			gvFormatValue(b, kv[0], e.Key, annotate && i == 0)
			b.WriteString(": ")
			gvFormatValue(b, kv[1], e.Value, annotate && i == 0)
		}
		b.WriteByte('}')
		return
	}
	xs, _ := v.([]any)
	if len(xs) == 0 {
		gvEmptyArray(b, t, annotate, "[]")
		return
	}
	b.WriteByte('[')
	for i, x := range xs {
		if i > 0 {
			b.WriteString(", ")
		}
		gvFormatValue(b, elem, x, annotate && i == 0)
	}
	b.WriteByte(']')
}

func gvEmptyArray(b *strings.Builder, t *gvariant.Type, annotate bool, s string) {
	if annotate {
		b.WriteString("@" + t.String() + " ")
	}
	b.WriteString(s)
}

// gvQuoteString quotes like g_variant_print: single quotes unless the
// string contains one, backslash before the quote and backslash,
// non-printable characters as \n-style or \uXXXX escapes.
func gvQuoteString(b *strings.Builder, s string) {
	q := '\''
	if strings.ContainsRune(s, '\'') {
		q = '"'
	}
	b.WriteRune(q)
	for len(s) > 0 {
		c, size := utf8.DecodeRuneInString(s)
		s = s[size:]
		if c == q || c == '\\' {
			b.WriteByte('\\')
		}
		if gvIsPrint(c) {
			b.WriteRune(c)
			continue
		}
		b.WriteByte('\\')
		switch c {
		case '\a':
			b.WriteByte('a')
		case '\b':
			b.WriteByte('b')
		case '\f':
			b.WriteByte('f')
		case '\n':
			b.WriteByte('n')
		case '\r':
			b.WriteByte('r')
		case '\t':
			b.WriteByte('t')
		case '\v':
			b.WriteByte('v')
		default:
			if c < 0x10000 {
				fmt.Fprintf(b, "u%04x", c)
			} else {
				fmt.Fprintf(b, "U%08x", c)
			}
		}
	}
	b.WriteRune(q)
}

// gvIsPrint is g_unichar_isprint: anything but control, format,
// unassigned and surrogate code points.
func gvIsPrint(c rune) bool {
	return c == ' ' || unicode.IsGraphic(c) || unicode.In(c, unicode.Zl, unicode.Zp, unicode.Co)
}

// gvStrescape is g_strescape: C escapes for \b \f \n \r \t \v \\ \", octal
// for other bytes below 0x20 or from 0x7f.
func gvStrescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\v':
			b.WriteString(`\v`)
		case '\\':
			b.WriteString(`\\`)
		case '"':
			b.WriteString(`\"`)
		default:
			if c < 0x20 || c >= 0x7f {
				fmt.Fprintf(&b, "\\%03o", c)
			} else {
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}
