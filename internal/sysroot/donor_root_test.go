//go:build root

package sysroot_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// TestDeployTakesOfferedCheckout: a checkout of v1 offered to the sysroot
// gives the deployment of v2 the directories the two commits share (the
// kernel's, which v2 keeps) and is gone after the deploy; the deployment
// is the one a whole checkout makes. An offer no deploy takes is removed
// by Close.
func TestDeployTakesOfferedCheckout(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	c1 := sysroottest.FakeOS{Version: "1", Etc: map[string]string{"hostname": "v1\n"}}.Commit(t, sr.Repo(), "fakeos/stable")
	c2 := sysroottest.FakeOS{Version: "2", Etc: map[string]string{"hostname": "v2\n"}}.Commit(t, sr.Repo(), "fakeos/stable")
	donor := filepath.Join(sr.Repo().Path(), "tmp", "donor")
	if _, err := repo.Checkout(ctx, sr.Repo(), c1.String(), donor, repo.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	modules := filepath.Join("usr/lib/modules", kver)
	before, err := os.Stat(filepath.Join(donor, modules, "vmlinuz"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sr.OfferCheckout(c1, donor); err != nil {
		t.Fatal(err)
	}
	d, err := sr.Deploy(ctx, "fakeos", c2.String(), sysroot.DeployOptions{})
	if err != nil {
		t.Fatalf("Deploy(v2) with v1's checkout offered = %v", err)
	}
	dep := filepath.Join(s, d.Path())
	after, err := os.Stat(filepath.Join(dep, modules, "vmlinuz"))
	if err != nil || !os.SameFile(before, after) {
		t.Errorf("the deployment's %s/vmlinuz is not the offered checkout's (%v)", modules, err)
	}
	if _, err := os.Lstat(donor); !os.IsNotExist(err) {
		t.Errorf("the offered checkout is still there after the deploy (%v)", err)
	}
	// The same commit deployed by a whole checkout, for comparison.
	whole := filepath.Join(t.TempDir(), "whole")
	if _, err := repo.Checkout(ctx, sr.Repo(), c2.String(), whole, repo.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	got, err := sysroottest.Tree(dep)
	if err != nil {
		t.Fatal(err)
	}
	want, err := sysroottest.Tree(whole)
	if err != nil {
		t.Fatal(err)
	}
	for p, w := range want {
		if got[p] != w {
			t.Errorf("deployment %s: %q, a whole checkout has %q", p, got[p], w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok && p != "etc" && filepath.Dir(p) != "etc" {
			t.Errorf("deployment has %s, which a whole checkout lacks", p)
		}
	}

	// Offered, never taken: Close removes it.
	donor2 := filepath.Join(sr.Repo().Path(), "tmp", "donor2")
	if _, err := repo.Checkout(ctx, sr.Repo(), c2.String(), donor2, repo.CheckoutOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := sr.OfferCheckout(c2, donor2); err != nil {
		t.Fatal(err)
	}
	if err := sr.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(donor2); !os.IsNotExist(err) {
		t.Errorf("the offered checkout is still there after Close (%v)", err)
	}
}
