//go:build peer

package testutil

import (
	"os/exec"
	"strings"
	"testing"
)

func TestOstree(t *testing.T) {
	t.Parallel()
	out, err := exec.Command(Ostree(t), "--version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "libostree") {
		t.Errorf("ostree --version = %q, %v, want libostree's version", out, err)
	}
}

func TestPython3GI(t *testing.T) {
	t.Parallel()
	py := Python3GI(t)
	out, err := exec.Command(py, "-c", "from gi.repository import GLib; print(GLib.Variant('(su)', ('a', 1)).print_(True))").CombinedOutput()
	if got, want := strings.TrimSpace(string(out)), "('a', uint32 1)"; err != nil || got != want {
		t.Errorf("GLib.Variant print = %q, %v, want %q", got, err, want)
	}
}
