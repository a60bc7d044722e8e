//go:build peer && root

package interop

import (
	"slices"
	"testing"
)

// TestDiffTrees checks the comparison helper itself: every property it promises to compare is
// reported, and equal trees give no differences.
func TestDiffTrees(t *testing.T) {
	t.Parallel()
	base := snapshot{
		"/":     {typ: "dir", mode: 0o755, xattrs: map[string]string{}},
		"/f":    {typ: "file", mode: 0o4755, uid: 1000, gid: 1000, size: 3, digest: "aa", xattrs: map[string]string{"user.a": "1"}},
		"/link": {typ: "symlink", target: "f", xattrs: map[string]string{}},
	}
	change := func(path string, f func(*node)) snapshot {
		s := base.clone()
		n := s[path]
		f(&n)
		s[path] = n
		return s
	}
	tests := []struct {
		name string
		got  snapshot
		want []string
	}{
		{name: "equal", got: base.clone()},
		{name: "mode", got: change("/f", func(n *node) { n.mode = 0o755 }),
			want: []string{`"/f": mode = 0755, want 4755`}},
		{name: "owner", got: change("/f", func(n *node) { n.uid = 0 }),
			want: []string{`"/f": owner = 0:1000, want 1000:1000`}},
		{name: "content", got: change("/f", func(n *node) { n.digest = "bb" }),
			want: []string{`"/f": content sha256 = bb, want aa`}},
		{name: "size", got: change("/f", func(n *node) { n.size = 4 }),
			want: []string{`"/f": size = 4, want 3`}},
		{name: "target", got: change("/link", func(n *node) { n.target = "g" }),
			want: []string{`"/link": symlink target = "g", want "f"`}},
		{name: "type", got: change("/link", func(n *node) { n.typ = "file" }),
			want: []string{`"/link": type = file, want symlink`}},
		{name: "xattr value", got: change("/f", func(n *node) { n.xattrs["user.a"] = "2" }),
			want: []string{`"/f": xattr user.a = "2", want "1"`}},
		{name: "xattr missing and extra", got: change("/f", func(n *node) { n.xattrs = map[string]string{"user.b": ""} }),
			want: []string{`"/f": xattr user.a missing (want "1")`, `"/f": unexpected xattr user.b = ""`}},
		{name: "missing and extra path", got: func() snapshot {
			s := base.clone()
			delete(s, "/link")
			s["/new\nline"] = node{typ: "dir"}
			return s
		}(), want: []string{`"/link": missing (want symlink)`, `"/new\nline": unexpected dir`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := diffTrees(base, tc.got); !slices.Equal(got, tc.want) {
				t.Errorf("diffTrees(base, %s) = %q, want %q", tc.name, got, tc.want)
			}
		})
	}
}
