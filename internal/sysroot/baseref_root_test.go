//go:build root

package sysroot_test

import (
	"context"
	"testing"

	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
)

// TestLayeredBaseKept: the base commit of a layered deployment (the parent of its derived
// commit) keeps a ref rpmostree/base/N, so that cleanup's prune, which keeps only what refs
// name, does not delete it once no other ref does; the ref goes with the deployment.
func TestLayeredBaseKept(t *testing.T) {
	_, sr := newSysroot(t)
	ctx := context.Background()
	r := sr.Repo()
	base := sysroottest.FakeOS{Version: "1"}.Commit(t, r, "fakeos/stable")
	// The derived commit: its parent is the base, as a layered commit's is.
	derived := sysroottest.FakeOS{Version: "1", Etc: map[string]string{"layered": "yes\n"}}.Commit(t, r, "fakeos/stable")
	if c, err := r.ReadCommit(derived); err != nil || c.Parent != base {
		t.Fatalf("derived commit's parent = %v, %v; want %s", c, err, base)
	}
	origin, err := keyfile.Parse([]byte("[origin]\nbaserefspec=fakeos/stable\n[packages]\nrequested=hello;\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sr.Deploy(ctx, "fakeos", derived.String(), sysroot.DeployOptions{Origin: origin}); err != nil {
		t.Fatalf("Deploy: %v", err)
	}
	// The remote ref moves on (here: goes away): only the deployment refs are left.
	if err := r.DeleteRef("", "fakeos/stable"); err != nil {
		t.Fatal(err)
	}
	if _, err := sr.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if got, err := r.ResolveRev("rpmostree/base/0"); err != nil || got != base {
		t.Fatalf("rpmostree/base/0 = %s, %v; want the base %s", got, err, base)
	}
	if ok, err := r.HasObject(ostree.ObjectName{Checksum: base, Type: ostree.ObjectCommit}); err != nil || !ok {
		t.Fatalf("base commit pruned: %v, %v", ok, err)
	}
	ds := sr.Deployments()
	if b, err := sr.BaseCommit(ds[0]); err != nil || b != base {
		t.Fatalf("BaseCommit = %s, %v; want %s", b, err, base)
	}

	// A plain deployment of the base replaces the layered one: its base ref goes.
	if _, err := sr.Deploy(ctx, "fakeos", base.String(), sysroot.DeployOptions{Origin: sysroot.NewOrigin("fakeos/stable")}); err != nil {
		t.Fatalf("Deploy(base): %v", err)
	}
	if _, err := sr.Undeploy(ctx, 1, sysroot.UndeployOptions{}); err != nil {
		t.Fatalf("Undeploy: %v", err)
	}
	if _, err := sr.Cleanup(ctx); err != nil {
		t.Fatalf("Cleanup: %v", err)
	}
	if got, err := r.ResolveRev("rpmostree/base/0"); err == nil {
		t.Fatalf("rpmostree/base/0 = %s after the layered deployment went", got)
	}
}
