//go:build root

package cli

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestMountLiveEscapes mounts a live overlay whose layer's path holds a comma, a colon and a
// backslash, as a sysroot under such a directory gives it: the mount must have exactly the two
// layers (the top's file and usr's both visible, no option injected by the path), the mount
// table must name the top layer back, and detaching must find and remove it.
func TestMountLiveEscapes(t *testing.T) {
	testutil.RequireRoot(t)
	base := filepath.Join(t.TempDir(), `sys,upperdir=x:y\z`)
	usr := filepath.Join(base, "root/usr")
	liveDir := filepath.Join(base, "var/lib/strata/layer/live")
	top := filepath.Join(liveDir, "abc.0")
	for _, d := range []string{usr, top, filepath.Join(base, "x")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for p, content := range map[string]string{filepath.Join(usr, "old"): "old\n", filepath.Join(top, "new"): "new\n"} {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	testutil.InMountNamespace(t, func() {
		if err := mountLive(usr, top); err != nil {
			t.Errorf("mountLive: %v", err)
			return
		}
		for name, want := range map[string]string{"old": "old\n", "new": "new\n"} {
			if got, err := os.ReadFile(filepath.Join(usr, name)); err != nil || string(got) != want {
				t.Errorf("%s through the overlay = %q, %v; want %q", name, got, err, want)
			}
		}
		if err := os.WriteFile(filepath.Join(usr, "w"), nil, 0o644); err == nil {
			t.Errorf("writing through the live overlay succeeded; want it read-only")
		}
		if got, ok, err := liveOverlay(usr, liveDir); err != nil || !ok || got != top {
			t.Errorf("liveOverlay = %q, %v, %v; want %q", got, ok, err, top)
		}
		if err := detachLive(usr, liveDir); err != nil {
			t.Errorf("detachLive: %v", err)
		}
		if _, err := os.Stat(filepath.Join(usr, "new")); !os.IsNotExist(err) {
			t.Errorf("the top layer's file after detachLive: %v, want it gone", err)
		}
	})
}
