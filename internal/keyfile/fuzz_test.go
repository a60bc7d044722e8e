package keyfile

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
)

// FuzzParse: key files (a repository's config, remote sections, origin
// files) come from disk and other tools. Parse either fails or gives a
// file that writes back to text which parses to the same groups, keys and
// values; and a
// value, whatever it holds, set and written reads back as itself without
// adding a group or key.
func FuzzParse(f *testing.F) {
	f.Add([]byte("# c\n[origin]\nrefspec=fakeos/stable\n\n[libostree-transient]\npinned=true\n"), "origin:fakeos/stable")
	f.Add([]byte("[core]\nrepo_version=1\nmode=bare\n[remote \"o\"]\nurl = http://x\n"), " lead\\s\ttab\nnl\\")
	f.Add([]byte("[bad\nkey"), "x\r\n[origin]\nrefspec=evil")
	f.Fuzz(func(t *testing.T, data []byte, value string) {
		kf, err := Parse(data)
		if err != nil {
			return
		}
		out := kf.Bytes()
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q).Bytes() = %q, which does not parse: %v", data, out, err)
		}
		if a, b := dump(kf), dump(again); a != b {
			t.Fatalf("key file does not read back as itself:\nfirst  %q\nsecond %q", a, b)
		}
		groups := kf.Groups()
		kf.Set("strata-fuzz", "k", value)
		back, err := Parse(kf.Bytes())
		if err != nil {
			t.Fatalf("after Set(%q): %q does not parse: %v", value, kf.Bytes(), err)
		}
		if v, ok := back.Get("strata-fuzz", "k"); !ok || v != value {
			t.Fatalf("Set(%q) reads back as %q, %v (file %q)", value, v, ok, kf.Bytes())
		}
		if !slices.Contains(groups, "strata-fuzz") {
			groups = append(groups, "strata-fuzz")
		}
		if g := back.Groups(); !slices.Equal(g, groups) {
			t.Fatalf("Set(%q) made groups %q, want %q", value, g, groups)
		}
		if k, want := back.Keys("strata-fuzz"), kf.Keys("strata-fuzz"); !slices.Equal(k, want) {
			t.Fatalf("Set(%q) reads back with keys %q, want %q", value, k, want)
		}
	})
}

// dump lists the groups, keys and values of f.
func dump(f *File) string {
	var b bytes.Buffer
	for _, g := range f.Groups() {
		fmt.Fprintf(&b, "[%q]\n", g)
		for _, k := range f.Keys(g) {
			v, _ := f.Get(g, k)
			fmt.Fprintf(&b, "%q=%q\n", k, v)
		}
	}
	return b.String()
}
