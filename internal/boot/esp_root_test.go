//go:build root

package boot_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/boot"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
)

// rewriteEntry rewrites the sysroot's BLS entry of the deployment with
// key through edit.
func rewriteEntry(t *testing.T, sysrootPath, key string, edit func(string) string) {
	t.Helper()
	bes, err := sysroot.ReadBootEntries(sysrootPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, be := range bes {
		if be.Deployment.Key() != key {
			continue
		}
		p := filepath.Join(sysrootPath, "boot/loader/entries", be.File)
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(edit(string(data))), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no sysroot entry of %s", key)
}

// replaceLine replaces the first line of s that starts with prefix.
func replaceLine(s, prefix, line string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if strings.HasPrefix(l, prefix) {
			lines[i] = line
			break
		}
	}
	return strings.Join(lines, "\n")
}

// Entries reads the sysroot's entries as the sysroot does: key and value
// split at a space or a tab, and a repeated key keeps its last value.
func TestEntriesReadsLikeTheSysroot(t *testing.T) {
	n := newNode(t)
	rewriteEntry(t, n.path, n.b, func(s string) string {
		s = replaceLine(s, "title ", "title\tFirst title\ntitle\tLast title")
		return strings.Replace(s, "\nlinux ", "\nlinux\t", 1)
	})
	s, err := sysroot.Open(n.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ents, err := boot.Entries(n.path, s.Bootable())
	if err != nil {
		t.Fatalf("Entries = %v", err)
	}
	if len(ents) != 2 || ents[0].OS+" "+ents[0].Deployment != n.b {
		t.Fatalf("Entries = %+v, want B then A", ents)
	}
	if got := ents[0].Title; got != "Last title" {
		t.Errorf("B's ESP title = %q, want %q (the entry's last title)", got, "Last title")
	}
	if fi, err := os.Stat(ents[0].Kernel); err != nil || !fi.Mode().IsRegular() || ents[0].KernelVer == "" {
		t.Errorf("B's ESP kernel = %q (KVER %q): %v, want the sysroot's kernel file", ents[0].Kernel, ents[0].KernelVer, err)
	}
}

// A kernel path that leaves the sysroot's /boot is refused, not copied
// onto the ESP.
func TestEntriesRefusesEscapingPaths(t *testing.T) {
	n := newNode(t)
	rewriteEntry(t, n.path, n.b, func(s string) string {
		return replaceLine(s, "linux ", "linux /../../../etc/vmlinuz-x")
	})
	s, err := sysroot.Open(n.path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := boot.Entries(n.path, s.Bootable()); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("Entries(linux /../../../etc/vmlinuz-x) = %v, want ErrCorrupt", err)
	}
}
