package sysroot

import (
	"bytes"
	"slices"
	"testing"

	"github.com/strata-os/strata/internal/keyfile"
)

// FuzzParseBLS: boot entries are read from /boot, which other tools and
// earlier versions write. Whatever parseBLS accepts, writing it back
// gives an entry with one line per key and no control character but the
// line ends, which reads back to itself; and no title, however hostile,
// adds or changes another key.
func FuzzParseBLS(f *testing.F) {
	f.Add([]byte("title Fake OS 1 (ostree:0)\nversion 1\noptions rw ostree=/ostree/boot.1/fakeos/abc/0\nlinux /ostree/fakeos-abc/vmlinuz-5.10\ninitrd /ostree/fakeos-abc/initramfs-5.10.img\n"), "1.0")
	f.Add([]byte("# comment\n\ntitle\tx\ninitrd a\ninitrd b\nfdtdir /dtb\noptions a  b\n"), "1.0\noptions init=/bin/sh rw")
	f.Add([]byte("title a\r\noptions x\x1b[2J\nk\x01ey v\n"), "\x1b]0;t\x07")
	f.Fuzz(func(t *testing.T, data []byte, title string) {
		e := parseBLS(data)
		out := e.bytes()
		if i := bytes.IndexFunc(out, func(r rune) bool { return r != '\n' && isControl(r) }); i >= 0 {
			t.Fatalf("bytes() of parseBLS(%q) holds a control character at %d: %q", data, i, out)
		}
		if again := parseBLS(out).bytes(); !bytes.Equal(again, out) {
			t.Fatalf("entry does not read back to itself:\nfirst  %q\nsecond %q", out, again)
		}
		before := parseBLS(out)
		want := slices.Clone(before.keys)
		if !slices.Contains(want, "title") {
			want = append(want, "title")
		}
		slices.Sort(want)
		e.set("title", title)
		after := parseBLS(e.bytes())
		got := slices.Clone(after.keys)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("title %q changed the keys: %q, want %q", title, got, want)
		}
		for _, k := range before.keys {
			if k == "title" {
				continue
			}
			if a, b := before.vals[k], after.vals[k]; a != b {
				t.Fatalf("title %q changed %s from %q to %q", title, k, a, b)
			}
		}
	})
}

// FuzzOrigin: origin files are read from the sysroot (other tools write
// them) and written from a refspec. Reading never fails but with
// errdefs classes, and a refspec written with NewOrigin reads back as
// itself without adding a key or group.
func FuzzOrigin(f *testing.F) {
	f.Add([]byte("[origin]\nrefspec=fakeos/stable\n\n[libostree-transient]\npinned=true\n"), "origin:fakeos/stable")
	f.Add([]byte("[origin]\nbaserefspec=a\ncontainer-image-reference=b\n"), " x\ny\\n\tz")
	f.Add([]byte("[origin\nrefspec"), "[origin]\nrefspec=evil")
	f.Fuzz(func(t *testing.T, data []byte, refspec string) {
		if kf, err := keyfile.Parse(data); err == nil {
			originRefspec(kf)
			originPinned(kf)
			c := cloneOrigin(kf)
			if !bytes.Equal(c.Bytes(), kf.Bytes()) {
				t.Fatalf("cloneOrigin changed %q into %q", kf.Bytes(), c.Bytes())
			}
		}
		o := NewOrigin(refspec)
		back, err := keyfile.Parse(o.Bytes())
		if err != nil {
			t.Fatalf("NewOrigin(%q) wrote %q, which does not parse: %v", refspec, o.Bytes(), err)
		}
		if got := originRefspec(back); got != refspec {
			t.Fatalf("NewOrigin(%q) reads back as %q (file %q)", refspec, got, o.Bytes())
		}
		if g, k := back.Groups(), back.Keys(originGroup); !slices.Equal(g, []string{originGroup}) || !slices.Equal(k, []string{"refspec"}) {
			t.Fatalf("NewOrigin(%q) wrote groups %q, keys %q (file %q)", refspec, g, k, o.Bytes())
		}
	})
}
