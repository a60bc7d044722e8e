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
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// The state the crash matrix compares (crash_hook_test.go,
// crash_kill_test.go): the deployment list as Open reads it back, with
// each deployment's /etc, and what a boot loader following the entries
// would start.

// crashDep is one deployment of a crashState.
type crashDep struct {
	Name, OSName, Refspec string
	Kargs                 string
	Pinned, Staged        bool
	Etc                   map[string]string // the deployment's etc tree (sysroottest.Tree)
}

// crashState is what a sysroot boots and lists.
type crashState struct {
	Deployments []crashDep
	View        sysroottest.View // zero: nothing to boot (no boot/loader yet)
}

// readCrashState opens the sysroot at s (an error if it cannot be read
// back: ErrCorrupt...), lists its deployments and walks its boot
// configuration as firmware would; the booted deployment must be
// complete: its kernel and initramfs under /boot are the deployment's
// own, its tree has usr and etc.
func readCrashState(s string) (crashState, error) {
	sr, err := sysroot.Open(s)
	if err != nil {
		return crashState{}, fmt.Errorf("Open: %w", err)
	}
	defer sr.Close()
	var st crashState
	for _, d := range sr.Deployments() {
		etc, err := sysroottest.Tree(filepath.Join(s, d.Path(), "etc"))
		if err != nil {
			return crashState{}, fmt.Errorf("reading etc of %s: %w", d.Path(), err)
		}
		st.Deployments = append(st.Deployments, crashDep{Name: d.Name(), OSName: d.OSName, Refspec: d.Refspec,
			Kargs: strings.Join(d.Kargs, " "), Pinned: d.Pinned, Staged: d.Staged, Etc: etc})
	}
	if _, err := os.Lstat(filepath.Join(s, "boot/loader")); errors.Is(err, fs.ErrNotExist) {
		return st, nil
	}
	v, err := sysroottest.BootedView(s)
	if err != nil {
		return crashState{}, fmt.Errorf("BootedView: %w", err)
	}
	if err := sysroottest.KernelComplete(s, v); err != nil {
		return crashState{}, err
	}
	st.View = v
	return st, nil
}

// withoutStaged is st without its staged deployment (what an interrupted
// Finalize leaves: the old default, the staged deployment discarded).
func (st crashState) withoutStaged() crashState {
	out := crashState{View: st.View}
	for _, d := range st.Deployments {
		if !d.Staged {
			out.Deployments = append(out.Deployments, d)
		}
	}
	return out
}

// outcome names the state a crash left: "old", "new", or
// "old-unstaged" (old, staged deployment discarded); "" if none.
func outcome(got, old, next crashState, discardsStaged bool) string {
	switch {
	case cmp.Equal(got, old):
		return "old"
	case cmp.Equal(got, next):
		return "new"
	case discardsStaged && cmp.Equal(got, old.withoutStaged()):
		return "old-unstaged"
	}
	return ""
}

// fsckRepo runs repo fsck on the sysroot's repository.
func fsckRepo(ctx context.Context, s string) error {
	r, err := repo.Open(filepath.Join(s, "ostree/repo"))
	if err != nil {
		return err
	}
	defer r.Close()
	rep, err := repo.Fsck(ctx, r, repo.FsckOptions{Workers: 1})
	if err != nil {
		return err
	}
	if !rep.OK() {
		var ps []string
		for _, p := range rep.Problems {
			ps = append(ps, p.String())
		}
		return fmt.Errorf("repo fsck: %d errors:\n%s", rep.Errors(), strings.Join(ps, "\n"))
	}
	return nil
}

// mustState is readCrashState failing the test.
func mustState(t *testing.T, s string) crashState {
	t.Helper()
	st, err := readCrashState(s)
	if err != nil {
		t.Fatalf("reading the state of %s: %v", s, err)
	}
	return st
}

// mustClean fails the test if the sysroot at s holds leftovers.
func mustClean(t *testing.T, s, when string) {
	t.Helper()
	l, err := sysroottest.Leftovers(s)
	if err != nil {
		t.Fatalf("Leftovers %s: %v", when, err)
	}
	if len(l) > 0 {
		t.Errorf("Leftovers %s = %q, want none", when, l)
	}
}
