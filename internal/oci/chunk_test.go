package oci

import (
	"fmt"
	"testing"
)

func TestPlanChunksManyPackages(t *testing.T) {
	t.Parallel()
	files := map[string]int64{}
	owner := map[string]string{}
	for i := range 200 {
		pkg := fmt.Sprintf("pkg%03d", i)
		for j := range 3 {
			p := fmt.Sprintf("usr/share/%s/f%d", pkg, j)
			files[p] = int64(i+1) * 100 // pkg199 is the biggest
			owner[p] = pkg
		}
	}
	files["usr/lib/os-release"] = 10 // no owner: left to the unpackaged layer
	chunks := planChunks(files, owner, DefaultMaxLayers)
	if len(chunks) > DefaultMaxLayers-2 {
		t.Errorf("planChunks = %d chunks, want at most %d (plus the unpackaged and commit layers)", len(chunks), DefaultMaxLayers-2)
	}
	if got := chunks[0].components; len(got) != 1 || got[0] != "pkg199" {
		t.Errorf("first chunk = %v, want the biggest package alone", got)
	}
	seen := map[string]int{}
	for _, c := range chunks {
		for p := range c.files {
			seen[p]++
		}
	}
	for p := range owner {
		if seen[p] != 1 {
			t.Errorf("%s is in %d chunks, want 1", p, seen[p])
		}
	}
	if seen["usr/lib/os-release"] != 0 {
		t.Errorf("an unpackaged file is in a package chunk")
	}
	// The same input gives the same plan: layers are reproducible.
	again := planChunks(files, owner, DefaultMaxLayers)
	for i := range chunks {
		if fmt.Sprint(chunks[i].components) != fmt.Sprint(again[i].components) {
			t.Fatalf("planChunks twice differs at chunk %d: %v and %v", i, chunks[i].components, again[i].components)
		}
	}
}

func TestCommitPath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"/etc/app.conf": "usr/etc/app.conf", "/bin/ls": "usr/bin/ls", "/lib64/ld.so": "usr/lib64/ld.so",
		"/usr/bin/ls": "usr/bin/ls", "/.": ".", "/boot/vmlinuz": "boot/vmlinuz",
	} {
		if got := commitPath(in); got != want {
			t.Errorf("commitPath(%q) = %q, want %q", in, got, want)
		}
	}
}
