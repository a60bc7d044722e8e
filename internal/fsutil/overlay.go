package fsutil

import "strings"

// overlayEscaper escapes what overlayfs's option parser takes as syntax.
var overlayEscaper = strings.NewReplacer(`\`, `\\`, `,`, `\,`, `:`, `\:`)

// OverlayPath escapes path for an overlayfs mount option (lowerdir=, upperdir=, workdir=).
// The kernel splits the mount data at commas and lowerdir= at colons, and takes a backslash as
// escaping the character after it: a path holding a comma would otherwise end the option there
// and start another (",upperdir=..."), and one holding a colon would name two layers.
func OverlayPath(path string) string { return overlayEscaper.Replace(path) }

// OverlayLowerdirs splits a lowerdir= value into its layers, top first, undoing OverlayPath's
// escapes: colons separate layers unless escaped, and a backslash stands for the character
// after it.
func OverlayLowerdirs(value string) []string {
	var layers []string
	var b strings.Builder
	for i := 0; i < len(value); i++ {
		switch c := value[i]; {
		case c == '\\' && i+1 < len(value):
			i++
			b.WriteByte(value[i])
		case c == ':':
			layers = append(layers, b.String())
			b.Reset()
		default:
			b.WriteByte(c)
		}
	}
	return append(layers, b.String())
}
