//go:build peer

package gvariant_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/testutil"
)

// glibPeer reads one JSON request per line, {"t": type, "v": value, "ours":
// hex}, builds the value with GLib's constructors (no PyGObject value
// guessing), and answers one JSON line: GLib's serialization, and whether
// GLib finds our bytes in normal form and equal to its own value, by
// g_variant_equal and by print_(True) text.
//
// Values in JSON: numbers for integers, bools, strings; doubles as the hex of
// their little-endian bits; "ay" as hex; variants as [type, value]; maybes
// as null or [value]; arrays, tuples and dict entries as lists.
const glibPeer = `
import json, struct, sys
from gi.repository import GLib
V, T = GLib.Variant, GLib.VariantType

SIMPLE = {
    'b': V.new_boolean, 'y': V.new_byte, 'n': V.new_int16, 'q': V.new_uint16,
    'i': V.new_int32, 'u': V.new_uint32, 'x': V.new_int64, 't': V.new_uint64,
    'h': V.new_handle, 's': V.new_string, 'o': V.new_object_path, 'g': V.new_signature,
}

def end(s, i):
    """Index just past the complete type that starts at s[i]."""
    c = s[i]
    if c in 'am':
        return end(s, i + 1)
    if c == '(':
        i += 1
        while s[i] != ')':
            i = end(s, i)
        return i + 1
    if c == '{':
        return end(s, end(s, i + 1)) + 1
    return i + 1

def members(s):
    """Member types of the tuple or dict entry type s."""
    out, i = [], 1
    while i < len(s) - 1:
        j = end(s, i)
        out.append(s[i:j])
        i = j
    return out

# Type strings are split here rather than with GLib.VariantType.first() and
# next(): PyGObject copies the boxed GVariantType, and next() then walks off
# the end of the copy.
def build(s, j):
    c = s[0]
    if c in SIMPLE:
        return SIMPLE[c](j)
    if c == 'd':
        return V.new_double(struct.unpack('<d', bytes.fromhex(j))[0])
    if c == 'v':
        return V.new_variant(build(j[0], j[1]))
    if c == 'm':
        return V.new_maybe(T.new(s[1:]), None if j is None else build(s[1:], j[0]))
    if s == 'ay':
        return V.new_from_bytes(T.new(s), GLib.Bytes.new(bytes.fromhex(j)), True)
    if c == 'a':
        return V.new_array(T.new(s[1:]), [build(s[1:], x) for x in j])
    if c == '(':
        return V.new_tuple(*[build(m, x) for m, x in zip(members(s), j, strict=True)])
    if c == '{':
        k, v = members(s)
        return V.new_dict_entry(build(k, j[0]), build(v, j[1]))
    raise ValueError('unknown type ' + s)

def data(v):
    return v.get_data_as_bytes().get_data() or b''

for line in sys.stdin:
    try:
        req = json.loads(line)
        t = T.new(req['t'])
        g = build(req['t'], req['v'])
        ours = V.new_from_bytes(t, GLib.Bytes.new(bytes.fromhex(req['ours'])), False)
        gt, ot = g.print_(True), ours.print_(True)
        out = {'glib': data(g).hex(), 'normal': ours.is_normal_form(), 'equal': g.equal(ours), 'text_equal': gt == ot}
        if gt != ot:
            out['glib_text'], out['our_text'] = gt, ot
    except Exception as e:
        out = {'error': repr(e)}
    sys.stdout.write(json.dumps(out) + '\n')
    sys.stdout.flush()
`

type glibRequest struct {
	Type  string `json:"t"`
	Value any    `json:"v"`
	Ours  string `json:"ours"`
}

type glibResponse struct {
	GLib      string `json:"glib"`
	Normal    bool   `json:"normal"`
	Equal     bool   `json:"equal"`
	TextEqual bool   `json:"text_equal"`
	GLibText  string `json:"glib_text"`
	OurText   string `json:"our_text"`
	Error     string `json:"error"`
}

// toJSON converts a value of type t to the JSON form glibPeer reads.
func toJSON(t *gvariant.Type, v any) any {
	switch t.Kind() {
	case 'd':
		return hex.EncodeToString(binary.LittleEndian.AppendUint64(nil, math.Float64bits(v.(float64))))
	case 'v':
		vv := v.(gvariant.Variant)
		return []any{vv.Type.String(), toJSON(vv.Type, vv.Value)}
	case 'm':
		m := v.(gvariant.Maybe)
		if !m.Valid {
			return nil
		}
		return []any{toJSON(t.Elem(), m.Value)}
	case 'a':
		switch xs := v.(type) {
		case []byte:
			return hex.EncodeToString(xs)
		case []gvariant.DictEntry:
			out := make([]any, len(xs))
			for i, x := range xs {
				out[i] = toJSON(t.Elem(), x)
			}
			return out
		case []any:
			out := make([]any, len(xs))
			for i, x := range xs {
				out[i] = toJSON(t.Elem(), x)
			}
			return out
		}
	case '(':
		tu := v.(gvariant.Tuple)
		out := make([]any, len(tu))
		for i, x := range tu {
			out[i] = toJSON(t.Fields()[i], x)
		}
		return out
	case '{':
		de := v.(gvariant.DictEntry)
		return []any{toJSON(t.Fields()[0], de.Key), toJSON(t.Fields()[1], de.Value)}
	default:
		return v
	}
	panic(fmt.Sprintf("toJSON: %T for %s", v, t))
}

// offsetWidths counts, by offset width, the containers in v that have
// framing offsets.
func offsetWidths(t *testing.T, typ *gvariant.Type, v any, seen map[int]int) {
	hasOffsets := false
	switch typ.Kind() {
	case 'v':
		vv := v.(gvariant.Variant)
		offsetWidths(t, vv.Type, vv.Value, seen)
	case 'm':
		if m := v.(gvariant.Maybe); m.Valid {
			offsetWidths(t, typ.Elem(), m.Value, seen)
		}
	case 'a':
		_, fixed := typ.Elem().FixedSize()
		switch xs := v.(type) {
		case []gvariant.DictEntry:
			hasOffsets = !fixed && len(xs) > 0
			for _, x := range xs {
				offsetWidths(t, typ.Elem(), x, seen)
			}
		case []any:
			hasOffsets = !fixed && len(xs) > 0
			for _, x := range xs {
				offsetWidths(t, typ.Elem(), x, seen)
			}
		}
	case '(', '{':
		var xs []any
		if de, ok := v.(gvariant.DictEntry); ok {
			xs = []any{de.Key, de.Value}
		} else {
			xs = v.(gvariant.Tuple)
		}
		for i, f := range typ.Fields() {
			if _, fixed := f.FixedSize(); !fixed && i < len(xs)-1 {
				hasOffsets = true
			}
			offsetWidths(t, f, xs[i], seen)
		}
	}
	if hasOffsets {
		b, err := gvariant.Marshal(typ, v)
		if err != nil {
			t.Fatalf("Marshal(%s, …) error: %v", typ, err)
		}
		switch n := len(b); {
		case n <= 0xff:
			seen[1]++
		case n <= 0xffff:
			seen[2]++
		default:
			seen[4]++
		}
	}
}

// peerTypes are compared first, before random types: every basic type,
// every OSTree type, and corner cases.
var peerTypes = []string{
	"b", "y", "n", "q", "i", "u", "h", "x", "t", "d", "s", "o", "g", "v",
	sigCommit, sigDirTree, sigDirMeta, sigFileHeader, sigFilezHeader, sigSummary, sigSuperblock, sigDeltaPart,
	sigMetadataDict, "aay", "mv", "(yqmsa{yv})", "ax", "as",
	"()", "(())", "a()", "m()", "my", "ms", "mmy", "mms", "mav", "amv", "a{yq}", "a{ss}", "{sv}", "{ts}", "{by}",
	"(yv)", "(vs)", "(st)", "(sy)", "(ays)", "a(yu)", "a(sy)", "(uy)", "(ty)", "aas", "av", "amy", "ad", "ab",
	"(a{sv}as)", "a{sa{sv}}", "a{oas}", "ag", "(yyyyyyyyy)", "(mdmsmv)", "{hd}", "a{nv}",
}

// TestGLibPeer serializes thousands of random values with Marshal and with
// GLib (PyGObject) and compares the bytes; our Unmarshal must decode GLib's
// bytes to the original value, and GLib must find our bytes in normal form
// and equal to its own value.
func TestGLibPeer(t *testing.T) {
	t.Parallel()
	py := testutil.Python3GI(t)

	cmd := exec.Command(py, "-c", glibPeer)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", py, err)
	}
	waited := false
	t.Cleanup(func() {
		if !waited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	in := bufio.NewWriter(stdin)
	out := bufio.NewReader(stdout)
	enc := json.NewEncoder(in)
	enc.SetEscapeHTML(false)

	const total = 3000
	rng := rand.New(rand.NewPCG(20240601, 42))
	seen := map[int]int{}
	kinds := map[byte]int{}
	compared, failures := 0, 0
	for i := range total {
		g := generator{src: rng, maxDepth: 4}
		switch {
		case i < 4*len(peerTypes) && i%4 == 3, i%25 == 0:
			g.big = 150000
		case i%4 == 0:
			g.big = 2000
		}
		var typ *gvariant.Type
		if i < 4*len(peerTypes) {
			typ = gvariant.MustType(peerTypes[i/4])
		} else {
			typ = gvariant.MustType(g.typeSig(0, false))
		}
		val := g.value(typ, 0)
		for _, c := range []byte(typ.String()) {
			kinds[c]++
		}
		offsetWidths(t, typ, val, seen)

		ours, err := gvariant.Marshal(typ, val)
		if err != nil {
			t.Fatalf("Marshal(%s, %#v) error: %v", typ, val, err)
		}
		if err := enc.Encode(glibRequest{Type: typ.String(), Value: toJSON(typ, val), Ours: hex.EncodeToString(ours)}); err != nil {
			t.Fatalf("encoding request %d: %v", i, err)
		}
		if err := in.Flush(); err != nil {
			t.Fatalf("writing to %s: %v\n%s", py, err, stderr.Bytes())
		}
		line, err := out.ReadBytes('\n')
		if err != nil {
			t.Fatalf("reading from %s: %v\n%s", py, err, stderr.Bytes())
		}
		var resp glibResponse
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatalf("decoding GLib's answer %q: %v", line, err)
		}
		compared++
		if msg := compareGLib(typ, val, ours, resp); msg != "" {
			failures++
			if failures <= 20 {
				t.Errorf("value %d of type %s: %s", i, typ, msg)
			}
		}
	}
	if err := stdin.Close(); err != nil {
		t.Fatal(err)
	}
	waited = true
	if err := cmd.Wait(); err != nil {
		t.Fatalf("%s: %v\n%s", py, err, stderr.Bytes())
	}
	if failures > 0 {
		t.Errorf("%d of %d values differ from GLib", failures, compared)
	}
	for _, c := range []byte(basicTypes + "vma({") {
		if kinds[c] == 0 {
			t.Errorf("no value with type code %q was compared", c)
		}
	}
	for _, w := range []int{1, 2, 4} {
		if seen[w] == 0 {
			t.Errorf("no container with %d-byte offsets was compared", w)
		}
	}
	t.Logf("compared %d values with GLib; containers with 1-, 2- and 4-byte offsets: %d, %d, %d", compared, seen[1], seen[2], seen[4])
}

// compareGLib checks GLib's answer for one value; it returns what differs,
// or "".
func compareGLib(typ *gvariant.Type, val any, ours []byte, resp glibResponse) string {
	if resp.Error != "" {
		return "GLib: " + resp.Error
	}
	var msgs []string
	theirs, err := hex.DecodeString(resp.GLib)
	if err != nil {
		return "bad hex from GLib: " + err.Error()
	}
	if !bytes.Equal(ours, theirs) {
		msgs = append(msgs, fmt.Sprintf("Marshal = %s, GLib serializes %s", short(ours), short(theirs)))
	}
	got, err := gvariant.Unmarshal(typ, theirs)
	if err != nil {
		msgs = append(msgs, fmt.Sprintf("Unmarshal(GLib's bytes) error: %v", err))
	} else if diff := cmp.Diff(val, got, cmpOpts); diff != "" {
		msgs = append(msgs, fmt.Sprintf("Unmarshal(GLib's bytes) differs (-want +got):\n%s", diff))
	}
	if !resp.Normal {
		msgs = append(msgs, "GLib: our bytes are not in normal form")
	}
	if !resp.Equal {
		msgs = append(msgs, "GLib: our bytes are not g_variant_equal to its value")
	}
	if !resp.TextEqual {
		msgs = append(msgs, fmt.Sprintf("GLib prints our bytes as %.300s, its value as %.300s", resp.OurText, resp.GLibText))
	}
	return strings.Join(msgs, "; ")
}

func short(b []byte) string {
	if len(b) <= 64 {
		return fmt.Sprintf("%x", b)
	}
	return fmt.Sprintf("%d bytes %x…%x", len(b), b[:24], b[len(b)-24:])
}
