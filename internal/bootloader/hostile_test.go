package bootloader

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

// TestSyncRefusesSymlinkedKernel: the kernel or initramfs named by an
// entry is a symlink to a host file only its owner may read. Followed, the
// file was copied onto the ESP, which every user can read (and which
// `strata image` publishes).
func TestSyncRefusesSymlinkedKernel(t *testing.T) {
	t.Parallel()
	const secret = "host secret 0600\n"
	for _, which := range []string{"kernel", "initramfs"} {
		t.Run(which, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			e := f.entry("aaaa.0", "k1", "x=1")
			hostFile := filepath.Join(t.TempDir(), "secret")
			if err := os.WriteFile(hostFile, []byte(secret), 0o600); err != nil {
				t.Fatal(err)
			}
			p := e.Kernel
			if which == "initramfs" {
				p = e.Initramfs
			}
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(hostFile, p); err != nil {
				t.Fatal(err)
			}
			esp := t.TempDir()
			if err := Sync(context.Background(), esp, []Entry{e}, Options{}); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Sync(%s -> host file) = %v, want ErrInvalid", which, err)
			}
			for name, content := range listing(t, esp) {
				if strings.Contains(content, secret) {
					t.Errorf("the host file was copied onto the ESP as %s", name)
				}
			}
		})
	}
}

// TestSyncRefusesControlCharacters: a title or options with a control
// character (a line break adds a key systemd-boot reads; an escape
// sequence reaches a terminal) is refused, and nothing is written.
func TestSyncRefusesControlCharacters(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	a := f.entry("aaaa.0", "k1", "x=1")
	for name, mutate := range map[string]func(*Entry){
		"carriage return in title": func(e *Entry) { e.Title = "OS\roptions init=/bin/sh" },
		"escape in title":          func(e *Entry) { e.Title = "OS \x1b]0;owned\x07" },
		"tab in options":           func(e *Entry) { e.Options = "rw\tinit=/bin/sh" },
		"delete in kernel version": func(e *Entry) { e.KernelVer = "6.1\x7f" },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := a
			mutate(&e)
			esp := t.TempDir()
			if err := Sync(context.Background(), esp, []Entry{e}, Options{}); !errors.Is(err, errdefs.ErrInvalid) {
				t.Errorf("Sync(%s) = %v, want ErrInvalid", name, err)
			}
			if files := listing(t, esp); len(files) != 0 {
				t.Errorf("Sync(%s) wrote %v, want nothing", name, files)
			}
		})
	}
}
