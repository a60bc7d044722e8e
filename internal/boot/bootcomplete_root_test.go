//go:build root

package boot_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/boot"
	"github.com/strata-os/strata/internal/bootloader"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
)

// node is a sysroot with two deployments, A (booted once and blessed)
// and B (the new default, counted), and its ESP.
type node struct {
	path, esp, a, b    string // a, b: "OS CHECKSUM.SERIAL"
	cmdlineA, cmdlineB string
}

func newNode(t *testing.T) *node {
	t.Helper()
	testutil.RequireRoot(t)
	dir := t.TempDir()
	n := &node{path: filepath.Join(dir, "sysroot"), esp: filepath.Join(dir, "esp")}
	if err := sysroot.Init(n.path, "fakeos"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sysroottest.ClearImmutable(n.path) })
	s, err := sysroot.Open(n.path, sysroot.WithBootloader(&boot.ESP{Dir: n.esp, Options: bootloader.Options{Tries: 3}}))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c1 := sysroottest.FakeOS{Version: "1"}.Commit(t, s.Repo(), "os")
	c2 := sysroottest.FakeOS{Version: "2", Kernel: "kernel 2\n"}.Commit(t, s.Repo(), "os")
	da, err := s.Deploy(ctx, "fakeos", c1.String(), sysroot.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ents, _ := bootloader.Entries(n.esp)
	if _, err := bootloader.Bless(n.esp, ents[0].File); err != nil { // A booted well once
		t.Fatal(err)
	}
	db, err := s.Deploy(ctx, "fakeos", c2.String(), sysroot.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.a, n.b = da.Key(), db.Key()
	list, err := boot.Entries(n.path, s.Deployments())
	if err != nil {
		t.Fatal(err)
	}
	n.cmdlineB, n.cmdlineA = writeCmdline(t, dir, "b", list[0].Options), writeCmdline(t, dir, "a", list[1].Options)
	return n
}

func writeCmdline(t *testing.T, dir, name, options string) string {
	t.Helper()
	p := filepath.Join(dir, "cmdline-"+name)
	if err := os.WriteFile(p, []byte("initrd=\\x "+options+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// entry returns the ESP entry of deployment key.
func (n *node) entry(t *testing.T, key string) bootloader.ESPEntry {
	t.Helper()
	ents, err := bootloader.Entries(n.esp)
	if err != nil {
		t.Fatal(err)
	}
	e, ok := bootloader.FindDeployment(ents, key)
	if !ok {
		t.Fatalf("no ESP entry of %s in %v", key, ents)
	}
	return e
}

func (n *node) rename(t *testing.T, key, suffix string) {
	t.Helper()
	e := n.entry(t, key)
	dir := filepath.Join(n.esp, "loader/entries")
	if err := os.Rename(filepath.Join(dir, e.File), filepath.Join(dir, e.Base()+suffix+".conf")); err != nil {
		t.Fatal(err)
	}
}

func TestBootComplete(t *testing.T) {
	failing := t.TempDir()
	if err := os.MkdirAll(filepath.Join(failing, "etc/strata/health.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(failing, "etc/strata/health.d/50-network"), []byte("#!/bin/sh\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		booted   string // "a" or "b"
		suffix   string // B's counter as firmware left it
		root     string // health-check root ("" = none)
		wantErr  string
		wantRoll bool
		wantDef  string // "a" or "b": the sysroot's default afterwards
		wantA    string // A's counter suffix afterwards
		wantB    string
		wantFW   string // "a" or "b": firmware's next pick ("" = wantDef)
		trial    bool   // the booted entry was counted (OnTrial)
	}{
		{"new default boots well", "b", "+2-1", "", "", false, "b", "", "", "", true},
		{"fallback after B ran out of tries", "a", "+0-3", "", "", true, "a", "", "+0-3", "", false},
		{"old default booted before B was tried", "a", "+3", "", "", false, "b", "", "+3", "", false},
		{"failing health check changes nothing", "b", "+2-1", failing, "50-network", false, "b", "", "+2-1", "", true},
		// A failing fallback boot is not on trial: rebooting would not help.
		{"failing health check after a fallback", "a", "+0-3", failing, "50-network", false, "b", "", "+0-3", "a", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := newNode(t)
			n.rename(t, n.b, tt.suffix)
			cmdline := map[string]string{"a": n.cmdlineA, "b": n.cmdlineB}[tt.booted]
			s, err := sysroot.Open(n.path, sysroot.WithProcCmdline(cmdline),
				sysroot.WithBootloader(&boot.ESP{Dir: n.esp, Options: bootloader.Options{Tries: 3}}))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			root := tt.root
			if root == "" {
				root = t.TempDir()
			}
			res, err := boot.BootComplete(context.Background(), s, boot.BootCompleteOptions{ESP: n.esp, Root: root})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("BootComplete = %v, want an error naming %s", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("BootComplete = %v", err)
			} else if res.RolledBack != tt.wantRoll {
				t.Errorf("BootComplete rolled back = %v, want %v", res.RolledBack, tt.wantRoll)
			}
			if res == nil || res.OnTrial != tt.trial {
				t.Errorf("BootComplete on trial = %v, want %v", res != nil && res.OnTrial, tt.trial)
			}
			// A fresh look at the sysroot, nothing booted: the booted
			// kernel's ostree= link (the old boot version's) is gone after
			// a rollback's cleanup.
			after, err := sysroot.Open(n.path, sysroot.WithProcCmdline(writeCmdline(t, t.TempDir(), "none", "")))
			if err != nil {
				t.Fatal(err)
			}
			defer after.Close()
			def := after.Deployments()[0]
			if got := def.Key(); got != map[string]string{"a": n.a, "b": n.b}[tt.wantDef] {
				t.Errorf("sysroot default = %s, want %s", got, tt.wantDef)
			}
			if a := n.entry(t, n.a).Suffix; a != tt.wantA {
				t.Errorf("A's entry counter = %q, want %q", a, tt.wantA)
			}
			if b := n.entry(t, n.b).Suffix; b != tt.wantB {
				t.Errorf("B's entry counter = %q, want %q", b, tt.wantB)
			}
			choice, err := bootloader.FirmwareChoice(n.esp)
			if err != nil {
				t.Fatal(err)
			}
			fw := tt.wantFW
			if fw == "" {
				fw = tt.wantDef
			}
			wantChoice := n.entry(t, map[string]string{"a": n.a, "b": n.b}[fw]).File
			if choice != wantChoice {
				t.Errorf("FirmwareChoice = %s, want %s", choice, wantChoice)
			}
		})
	}
}
