package fsutil

import (
	"slices"
	"strings"
	"testing"
)

func TestOverlayPath(t *testing.T) {
	for _, tc := range []struct{ path, want string }{
		{"/var/lib/strata/layer/live/abc.0", "/var/lib/strata/layer/live/abc.0"},
		{"/a,upperdir=/tmp/x", `/a\,upperdir=/tmp/x`},
		{"/a:/b", `/a\:/b`},
		{`/a\b`, `/a\\b`},
		{`/a\,b`, `/a\\\,b`},
	} {
		got := OverlayPath(tc.path)
		if got != tc.want {
			t.Errorf("OverlayPath(%q) = %q, want %q", tc.path, got, tc.want)
		}
		// Escaped, the path has no comma or colon the kernel would split at.
		for i := 0; i < len(got); i++ {
			if got[i] == '\\' {
				i++
			} else if got[i] == ',' || got[i] == ':' {
				t.Errorf("OverlayPath(%q) = %q has an unescaped %q", tc.path, got, got[i])
			}
		}
	}
}

func TestOverlayLowerdirs(t *testing.T) {
	paths := []string{"/live/a,b:c\\d", "/usr", "/x:"}
	var esc []string
	for _, p := range paths {
		esc = append(esc, OverlayPath(p))
	}
	if got := OverlayLowerdirs(strings.Join(esc, ":")); !slices.Equal(got, paths) {
		t.Errorf("OverlayLowerdirs(%q) = %q, want %q", strings.Join(esc, ":"), got, paths)
	}
	if got := OverlayLowerdirs("/top:/usr"); !slices.Equal(got, []string{"/top", "/usr"}) {
		t.Errorf("OverlayLowerdirs(/top:/usr) = %q", got)
	}
}
