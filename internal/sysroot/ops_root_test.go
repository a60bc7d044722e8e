//go:build root

package sysroot_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// snapshot lists everything under the sysroot but the repository's
// objects and tmp: path, type, link target or size.
func snapshot(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(s, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(s, p)
		if rel == "ostree/repo/objects" || rel == "ostree/repo/tmp" || rel == "ostree/repo/.lock" {
			return fs.SkipDir
		}
		fi, _ := d.Info()
		line := rel + " " + fi.Mode().String()
		if fi.Mode()&fs.ModeSymlink != 0 {
			l, _ := os.Readlink(p)
			line += " -> " + l
		} else if fi.Mode().IsRegular() {
			line += fmt.Sprintf(" %d", fi.Size())
		}
		out = append(out, line)
		return nil
	})
	return out
}

func TestDeployBadInputChangesNothing(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	sysroottest.FakeOS{NoKernel: true}.Commit(t, sr.Repo(), "fakeos/nokernel")
	sysroottest.FakeOS{Files: map[string]string{"etc/x": "y"}, Etc: map[string]string{"z": "w"}}.Commit(t, sr.Repo(), "fakeos/bothetc")
	corrupt := sysroottest.FakeOS{Version: "c"}.Commit(t, sr.Repo(), "fakeos/corrupt")
	obj := filepath.Join(s, "ostree/repo/objects", corrupt.String()[:2], corrupt.String()[2:]+".commit")
	if err := os.WriteFile(obj, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, s)
	view := booted(t, s)
	tests := []struct {
		name, os, rev string
		opts          sysroot.DeployOptions
		want          error
	}{
		{"unknown ref", "fakeos", "fakeos/nope", sysroot.DeployOptions{}, errdefs.ErrNotFound},
		{"unknown checksum", "fakeos", strings.Repeat("ab", 32), sysroot.DeployOptions{}, errdefs.ErrNotFound},
		{"corrupt commit", "fakeos", "fakeos/corrupt", sysroot.DeployOptions{}, errdefs.ErrCorrupt},
		{"commit without kernel", "fakeos", "fakeos/nokernel", sysroot.DeployOptions{}, errdefs.ErrInvalid},
		{"etc and usr/etc", "fakeos", "fakeos/bothetc", sysroot.DeployOptions{}, errdefs.ErrInvalid},
		{"uninitialized stateroot", "otheros", "fakeos/stable", sysroot.DeployOptions{}, errdefs.ErrNotFound},
		{"bad karg", "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"ostree=/x"}}, errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sr.Deploy(ctx, tt.os, tt.rev, tt.opts)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Deploy(%s) = %v, want %v", tt.rev, err, tt.want)
			}
			if diff := cmp.Diff(before, snapshot(t, s)); diff != "" {
				t.Errorf("Deploy(%s) changed the sysroot (-before +after):\n%s", tt.rev, diff)
			}
			if got := booted(t, s); got != view {
				t.Errorf("BootedView after Deploy(%s) = %+v, want %+v", tt.rev, got, view)
			}
		})
	}
}

// TestRollbackSameKernelSwapsSubbootversion: two deployments with the
// same kernel, kargs and version trade places by swapping only
// ostree/boot.B (docs/formats/sysroot.md), the BLS entries untouched.
func TestRollbackSameKernelSwapsSubbootversion(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	a := sysroottest.FakeOS{Version: "1", Files: map[string]string{"usr/share/a": "a"}}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	b := sysroottest.FakeOS{Version: "1", Files: map[string]string{"usr/share/b": "b"}}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	loader := readlink(t, filepath.Join(s, "boot/loader"))
	bv := strings.TrimPrefix(loader, "loader.")
	entries := snapshot(t, filepath.Join(s, "boot"))
	sub := readlink(t, filepath.Join(s, "ostree/boot."+bv))
	if v := booted(t, s); v.Checksum != b.String() {
		t.Fatalf("BootedView = %s, want %s", v.Checksum, b)
	}
	if _, err := sr.Rollback(ctx); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	if got := readlink(t, filepath.Join(s, "boot/loader")); got != loader {
		t.Errorf("boot/loader -> %s, want it unchanged (%s)", got, loader)
	}
	if got := readlink(t, filepath.Join(s, "ostree/boot."+bv)); got == sub {
		t.Errorf("ostree/boot.%s -> %s, want the other subboot version", bv, got)
	}
	if diff := cmp.Diff(entries, snapshot(t, filepath.Join(s, "boot"))); diff != "" {
		t.Errorf("boot/ changed (-before +after):\n%s", diff)
	}
	if v := booted(t, s); v.Checksum != a.String() {
		t.Errorf("BootedView after rollback = %s, want %s", v.Checksum, a)
	}
	if got, want := names(sr.Deployments()), []string{a.String() + ".0", b.String() + ".0"}; !cmp.Equal(got, want) {
		t.Errorf("Deployments() = %v, want %v", got, want)
	}
}

func TestPinCleanupKargs(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	var cs []string
	for i := range 3 {
		c := sysroottest.FakeOS{Version: fmt.Sprint(i), Kernel: fmt.Sprintf("k%d\n", i)}.Commit(t, sr.Repo(), "fakeos/stable")
		cs = append(cs, c.String()+".0")
		if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"quiet"}}); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if _, err := sr.SetPinned(ctx, 0, true); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Deploy keeps [new, merge] + pinned.
	if got, want := names(sr.Deployments()), []string{cs[2], cs[1], cs[0]}; !cmp.Equal(got, want) {
		t.Fatalf("Deployments() = %v, want %v", got, want)
	}
	origin := readFile(t, filepath.Join(s, sr.Deployments()[2].OriginPath()))
	if origin != "[origin]\nrefspec=fakeos/stable\n\n[libostree-transient]\npinned=true\n" {
		t.Errorf("pinned origin = %q", origin)
	}
	// Cleanup keeps default, rollback and pinned.
	st, err := sr.Cleanup(ctx)
	if err != nil || len(st.Undeployed) != 0 {
		t.Errorf("Cleanup() = %+v, %v, want nothing undeployed", st.Undeployed, err)
	}
	if _, err := sr.SetPinned(ctx, 2, false); err != nil {
		t.Fatal(err)
	}
	st, err = sr.Cleanup(ctx)
	if err != nil || len(st.Undeployed) != 1 || len(st.Deployments) != 1 {
		t.Fatalf("Cleanup() after unpin = %+v, %v, want one undeployed", st, err)
	}
	if got, want := names(sr.Deployments()), []string{cs[2], cs[1]}; !cmp.Equal(got, want) {
		t.Errorf("Deployments() after cleanup = %v, want %v", got, want)
	}
	// SetKargs rewrites the entry of one deployment.
	d, err := sr.SetKargs(ctx, 1, []string{"console=ttyS0", "rw"})
	if err != nil {
		t.Fatalf("SetKargs: %v", err)
	}
	if strings.Join(d.Kargs, " ") != "console=ttyS0 rw" {
		t.Errorf("SetKargs() kargs = %q", d.Kargs)
	}
	loader := readlink(t, filepath.Join(s, "boot/loader"))
	e := sysroottest.ParseEntry([]byte(readFile(t, filepath.Join(s, "boot", loader, "entries/ostree-1-fakeos.conf"))))
	if !strings.HasPrefix(e["options"], "console=ttyS0 rw ostree=/ostree/boot.") {
		t.Errorf("entry options after SetKargs = %q", e["options"])
	}
	if v := booted(t, s); !strings.HasPrefix(v.Options, "quiet ostree=") {
		t.Errorf("default entry options = %q, want quiet ostree=...", v.Options)
	}
}

func TestStageFinalize(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	sysroottest.FakeOS{Version: "1", Etc: map[string]string{"a.conf": "1\n"}}.Commit(t, sr.Repo(), "fakeos/stable")
	d1, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"rw"}})
	if err != nil {
		t.Fatal(err)
	}
	c2 := sysroottest.FakeOS{Version: "2", Kernel: "k2\n", Etc: map[string]string{"a.conf": "2\n"}}.Commit(t, sr.Repo(), "fakeos/stable")
	st, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Stage: true})
	if err != nil {
		t.Fatalf("Deploy(stage): %v", err)
	}
	if !st.Staged || st.Index != 0 {
		t.Errorf("staged deployment = %+v", st)
	}
	if v := booted(t, s); v.Checksum != d1.Checksum.String() {
		t.Errorf("BootedView after staging = %s, want the old default", v.Checksum)
	}
	// An edit made after staging is carried over by Finalize.
	if err := os.WriteFile(filepath.Join(s, d1.Path(), "etc/late.conf"), []byte("late\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sr2, err := sysroot.Open(s)
	if err != nil {
		t.Fatal(err)
	}
	defer sr2.Close()
	if got, ok := sr2.Staged(); !ok || got.Checksum != c2 {
		t.Fatalf("reopened Staged() = %s, %v", got.Name(), ok)
	}
	fd, ok, err := sr2.Finalize(ctx)
	if err != nil || !ok {
		t.Fatalf("Finalize() = %v, %v", ok, err)
	}
	if fd.Staged || fd.Index != 0 || strings.Join(fd.Kargs, " ") != "rw" {
		t.Errorf("finalized deployment = index %d staged %v kargs %q", fd.Index, fd.Staged, fd.Kargs)
	}
	v := booted(t, s)
	if v.Checksum != c2.String() {
		t.Errorf("BootedView after Finalize = %s, want %s", v.Checksum, c2)
	}
	if got := readFile(t, filepath.Join(s, v.Deployment, "etc/late.conf")); got != "late\n" {
		t.Errorf("etc/late.conf = %q", got)
	}
	if _, err := os.Stat(sysroot.StagedPath(s)); err == nil {
		t.Errorf("staged record survives Finalize")
	}
	if _, ok, err := sr2.Finalize(ctx); ok || err != nil {
		t.Errorf("second Finalize() = %v, %v, want nothing to do", ok, err)
	}
}

// A locked staged deployment is not finalized until it is unlocked; a dropped one is gone and
// the old default stays.
func TestStageLocked(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
	d1, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c2 := sysroottest.FakeOS{Version: "2", Kernel: "k2\n"}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Stage: true, LockFinalization: true}); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := sr.Finalize(ctx); ok || !errors.Is(err, sysroot.ErrStagedLocked) {
		t.Fatalf("Finalize of a locked staged deployment = %v, %v; want ErrStagedLocked", ok, err)
	}
	if v := booted(t, s); v.Checksum != d1.Checksum.String() {
		t.Fatalf("after a refused Finalize the default is %s, want the old %s", v.Checksum, d1.Checksum)
	}
	if err := sr.UnlockStaged(ctx); err != nil {
		t.Fatal(err)
	}
	if fd, ok, err := sr.Finalize(ctx); !ok || err != nil || fd.Checksum != c2 {
		t.Fatalf("Finalize after UnlockStaged = %v, %v", ok, err)
	}
	// Stage again and drop it.
	sysroottest.FakeOS{Version: "3", Kernel: "k3\n"}.Commit(t, sr.Repo(), "fakeos/stable")
	st, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Stage: true, LockFinalization: true})
	if err != nil {
		t.Fatal(err)
	}
	if dropped, err := sr.DropStaged(ctx); !dropped || err != nil {
		t.Fatalf("DropStaged = %v, %v", dropped, err)
	}
	if _, ok := sr.Staged(); ok {
		t.Error("a staged deployment survives DropStaged")
	}
	if _, err := os.Stat(filepath.Join(s, st.Path())); err == nil {
		t.Errorf("the dropped deployment's directory %s is still there", st.Path())
	}
	if v := booted(t, s); v.Checksum != c2.String() {
		t.Errorf("after DropStaged the default is %s, want %s", v.Checksum, c2)
	}
}

// TestCrashHookLeavesOldOrNew: a simulated crash after each step of a
// deploy leaves a sysroot that boots the old or the new commit, and a
// re-run of the deploy converges.
func TestCrashHookLeavesOldOrNew(t *testing.T) {
	for _, step := range []string{"prepare-cleanup", "checkout", "kernel", "etc", "etc-merge", "origin", "immutable",
		"entries", "bootlinks", "loader-link", "synced", "committed", "reloaded", "bootversions", "deployments", "bootdirs", "refs", "prune"} {
		t.Run(step, func(t *testing.T) {
			s, sr := newSysroot(t)
			ctx := context.Background()
			c1 := sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
			if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); err != nil {
				t.Fatal(err)
			}
			c2 := sysroottest.FakeOS{Version: "2", Kernel: "k2\n"}.Commit(t, sr.Repo(), "fakeos/stable")
			crashing, err := sysroot.Open(s, sysroot.WithStepHook(func(got string) error {
				if got == step {
					return sysroot.ErrCrash
				}
				return nil
			}))
			if err != nil {
				t.Fatal(err)
			}
			defer crashing.Close()
			if _, err := crashing.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); !errors.Is(err, sysroot.ErrCrash) {
				t.Fatalf("Deploy with a crash at %s = %v", step, err)
			}
			v := booted(t, s)
			if v.Checksum != c1.String() && v.Checksum != c2.String() {
				t.Fatalf("after a crash at %s BootedView = %s, want old or new", step, v.Checksum)
			}
			sr2, err := sysroot.Open(s)
			if err != nil {
				t.Fatalf("Open after a crash at %s: %v", step, err)
			}
			defer sr2.Close()
			if v.Checksum == c1.String() {
				if _, err := sr2.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); err != nil {
					t.Fatalf("re-run Deploy after a crash at %s: %v", step, err)
				}
			} else if _, err := sr2.Cleanup(ctx); err != nil {
				t.Fatalf("Cleanup after a crash at %s: %v", step, err)
			}
			if got, want := names(sr2.Deployments()), []string{c2.String() + ".0", c1.String() + ".0"}; !cmp.Equal(got, want) {
				t.Errorf("after a crash at %s and recovery: Deployments() = %v, want %v", step, got, want)
			}
			if v := booted(t, s); v.Checksum != c2.String() {
				t.Errorf("after recovery BootedView = %s, want %s", v.Checksum, c2)
			}
		})
	}
}
