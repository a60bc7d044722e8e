//go:build peer

package repo

import (
	"encoding/hex"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/testutil"
)

// coGLibPrint has GLib parse each GVariant text and answer its type, its
// serialized bytes and g_variant_print(value, TRUE).
const coGLibPrint = `
import json, sys
from gi.repository import GLib
out = []
for text in json.load(sys.stdin):
    v = GLib.Variant.parse(None, text, None, None)
    out.append([v.get_type_string(), bytes(v.get_data_as_bytes().get_data()).hex(), v.print_(True)])
json.dump(out, sys.stdout)
`

// FormatVariant prints what GLib prints, for values decoded from the
// bytes GLib serialized.
func TestFormatVariantMatchesGLib(t *testing.T) {
	t.Parallel()
	py := testutil.Python3GI(t)
	texts := []string{
		"'hello'", `"it's"`, `'tab\there\nnewline \\ back'`, `'\u0001 \u200b é 😀'`,
		"true", "byte 7", "int16 -3", "uint16 4", "-5", "handle 1", "uint32 3", "int64 -7", "uint64 42",
		"1.5", "3.0", "0.1", "1e20", "2.5e-10", "-1.25",
		"objectpath '/a/b'", "signature 'a{sv}'",
		"[byte 0x01, 0x02]", "b'ab'", `b"it's"`, `b'a\n\x7f"'`, "@ay []", "[byte 0x61, 0x00, 0x62, 0x00]",
		"['a', 'b']", "@as []", "[uint32 1, 2]", "@au []",
		"{'k': <1>}", "{'a': uint32 1, 'b': 2}", "@a{sv} {}", "{'x': <@mi nothing>, 'y': <[<'z'>]>}",
		"<'x'>", "<<1.5>>", "(uint32 3, 's')", "(uint32 3,)", "@(ss) ('a', 'b')",
		"@mi nothing", "@mi 5", "@mmi just nothing", "[@mi 5, nothing]", "@ms 'x'",
		"[b'ab', [byte 0x01]]",
		"[(b'user.myattr', [byte 0x76, 0x61, 0x6c, 0x75, 0x65, 0x31])]", "@a(ayay) []",
		"{'version': <'1.0'>, 'ostree.ref-binding': <['test/ref']>, 'custom.uint64': <uint64 42>}",
	}
	in, err := json.Marshal(texts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(py, "-c", coGLibPrint)
	cmd.Stdin = strings.NewReader(string(in))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("GLib printing %d values: %v", len(texts), err)
	}
	var answers [][3]string
	if err := json.Unmarshal(out, &answers); err != nil || len(answers) != len(texts) {
		t.Fatalf("GLib answered %q (%v), want %d values", out, err, len(texts))
	}
	for i, a := range answers {
		typ, data, want := a[0], a[1], a[2]
		b, err := hex.DecodeString(data)
		if err != nil {
			t.Fatal(err)
		}
		gt, err := gvariant.ParseType(typ)
		if err != nil {
			t.Errorf("ParseType(%s) = %v", typ, err)
			continue
		}
		v, err := gvariant.Unmarshal(gt, b)
		if err != nil {
			t.Errorf("Unmarshal(%s, %s) = %v", typ, data, err)
			continue
		}
		if got := FormatVariant(gvariant.Variant{Type: gt, Value: v}); got != want {
			t.Errorf("FormatVariant(%s from %s) = %s, want GLib's %s", typ, texts[i], got, want)
		}
	}
}
