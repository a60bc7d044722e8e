//go:build root

package sysroot_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// TestLeftoversSeesResidue: the crash matrix's leftover check reports
// each kind of garbage a crash can leave, so that a clean result means
// something.
func TestLeftoversSeesResidue(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	fakeV(1).Commit(t, sr.Repo(), "fakeos/stable")
	d, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l, err := sysroottest.Leftovers(s); err != nil || len(l) > 0 {
		t.Fatalf("Leftovers after a deploy = %q, %v, want none", l, err)
	}
	other := "loader.0"
	if booted(t, s).Loader == other {
		other = "loader.1"
	}
	junk := []struct{ path, report string }{
		{"boot/loader.tmp", "boot/loader.tmp"},
		{"boot/" + other + "/entries/ostree-1-fakeos.conf", "boot/" + other},
		{"boot/ostree/fakeos-0000000000000000000000000000000000000000000000000000000000000000/vmlinuz", "boot/ostree/fakeos-0000000000000000000000000000000000000000000000000000000000000000"},
		{"ostree/boot.0.tmp", "ostree/boot.0.tmp"},
		{"ostree/deploy/fakeos/deploy/" + d.Checksum.String() + ".9/usr/x", "ostree/deploy/fakeos/deploy/" + d.Checksum.String() + ".9"},
		{"ostree/deploy/fakeos/deploy/." + d.Name() + ".origin.tmp", "ostree/deploy/fakeos/deploy/." + d.Name() + ".origin.tmp"},
		{"run/strata/.staged-deployment.tmp-123", "run/strata/.staged-deployment.tmp-123"},
		{"ostree/repo/refs/heads/ostree/9/9/9", "ref ostree/9/9/9 -> x"},
	}
	for _, j := range junk {
		t.Run(filepath.Base(j.path), func(t *testing.T) {
			p := filepath.Join(s, j.path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte("x\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(filepath.Join(s, j.report))
			defer os.Remove(p)
			l, err := sysroottest.Leftovers(s)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(l, j.report) {
				t.Errorf("Leftovers with %s = %q, want %q in it", j.path, l, j.report)
			}
		})
	}
}

// TestCleanupRemovesInterruptedWrites: a kill between the write of a
// temporary file or link and its rename leaves it behind; the sysroot
// still opens, and the next Cleanup removes it. (Random kills rarely
// land in these windows: the residue is made by hand.)
func TestCleanupRemovesInterruptedWrites(t *testing.T) {
	for _, tt := range []struct {
		name string
		make func(s string, d sysroot.Deployment) error
	}{
		{"origin temp", func(s string, d sysroot.Deployment) error {
			return os.WriteFile(filepath.Join(s, filepath.Dir(d.Path()), "."+d.Name()+".origin.tmp"), []byte("[origin]\n"), 0o644)
		}},
		{"origin atomic temp", func(s string, d sysroot.Deployment) error {
			return os.WriteFile(filepath.Join(s, filepath.Dir(d.Path()), "."+d.Name()+".origin.tmp-4242"), []byte("[origin]\n"), 0o644)
		}},
		{"boot link temp", func(s string, d sysroot.Deployment) error {
			return os.Symlink("boot.1.0", filepath.Join(s, "ostree/boot.1.tmp"))
		}},
		{"staged record temp", func(s string, d sysroot.Deployment) error {
			p := sysroot.StagedPath(s)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(filepath.Dir(p), ".staged-deployment.tmp-4242"), []byte("{"), 0o644)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, sr := newSysroot(t)
			ctx := context.Background()
			fakeV(1).Commit(t, sr.Repo(), "fakeos/stable")
			d, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.make(s, d); err != nil {
				t.Fatal(err)
			}
			if l, _ := sysroottest.Leftovers(s); len(l) == 0 {
				t.Fatalf("Leftovers sees no residue")
			}
			sr2, err := sysroot.Open(s)
			if err != nil {
				t.Fatalf("Open with the residue: %v", err)
			}
			defer sr2.Close()
			if _, err := sr2.Cleanup(ctx); err != nil {
				t.Fatalf("Cleanup: %v", err)
			}
			mustClean(t, s, "after Cleanup")
		})
	}
}
