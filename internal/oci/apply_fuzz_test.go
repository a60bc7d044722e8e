package oci

import (
	"archive/tar"
	"bytes"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/repo"
)

// FuzzApply feeds arbitrary layer tars to the applier: it may refuse them, but never
// panics, and a tree it accepts holds only clean names (no "", ".", ".." or "/" in a name).
func FuzzApply(f *testing.F) {
	for _, entries := range [][]tarEntry{
		{dirEntry("./"), dirEntry("etc/"), fileEntry("etc/a", "x")},
		{fileEntry("usr/.wh..wh..opq", ""), fileEntry("usr/.wh.x", "")},
		{{h: tar.Header{Name: "usr/l", Typeflag: tar.TypeSymlink, Linkname: "../x"}}, fileEntry("usr/l/y", "")},
		{fileEntry("var/a", ""), {h: tar.Header{Name: "usr/h", Typeflag: tar.TypeLink, Linkname: "var/a"}}},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			h := e.h
			h.Size = int64(len(e.body))
			if err := tw.WriteHeader(&h); err != nil {
				f.Fatal(err)
			}
			tw.Write([]byte(e.body))
		}
		tw.Close()
		f.Add(buf.Bytes(), false)
	}
	r, err := repo.Init(f.TempDir()+"/repo", repo.ModeArchive)
	if err != nil {
		f.Fatal(err)
	}
	r.SetFsync(false)
	f.Fuzz(func(t *testing.T, layer []byte, derived bool) {
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		tr, err := newTree(txn)
		if err != nil {
			t.Fatal(err)
		}
		a := &applier{t: tr, derived: derived, maxSize: 1 << 20, carried: map[string][]byte{}}
		if err := a.apply(bytes.NewReader(layer)); err != nil {
			return
		}
		var check func(n *node)
		check = func(n *node) {
			for name, c := range n.Children {
				if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
					t.Fatalf("accepted layer made an entry named %q", name)
				}
				if c.Dir {
					check(c)
				}
			}
		}
		check(tr.Root)
	})
}
