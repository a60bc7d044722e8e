//go:build root && peer

package sysroot_test

import (
	"context"
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/sysroot/sysroottest"
	"github.com/strata-os/strata/internal/testutil"
)

// ostreeStatus runs the read-only `ostree admin status` on s and returns
// the deployments it lists: "CHECKSUM.SERIAL" in order.
func ostreeStatus(t *testing.T, s string) ([]string, string) {
	t.Helper()
	cmd := exec.Command(testutil.Ostree(t), "admin", "status", "--sysroot", s)
	cmd.Env = append(os.Environ(), "OSTREE_SYSROOT_OPTS=skip-sync")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ostree admin status: %v\n%s", err, out)
	}
	var ds []string
	for _, m := range regexp.MustCompile(`(?m)^[* ] \S+ ([0-9a-f]{64}\.[0-9]+)`).FindAllStringSubmatch(string(out), -1) {
		ds = append(ds, m[1])
	}
	return ds, string(out)
}

// TestPeerStatusReadsStrataSysroot: ostree admin status lists strata's
// deployments in strata's order with the same checksums and serials.
func TestPeerStatusReadsStrataSysroot(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Kargs: []string{"rw"}}); err != nil {
		t.Fatal(err)
	}
	sysroottest.FakeOS{Version: "2", Kernel: "k2\n"}.Commit(t, sr.Repo(), "fakeos/stable")
	if _, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := sr.SetPinned(ctx, 1, true); err != nil {
		t.Fatal(err)
	}
	got, out := ostreeStatus(t, s)
	if diff := cmp.Diff(names(sr.Deployments()), got); diff != "" {
		t.Errorf("ostree admin status deployments mismatch (-strata +ostree):\n%s\n%s", diff, out)
	}
	for _, want := range []string{"Version: 2", "Version: 1", "origin refspec: fakeos/stable", "Pinned: yes"} {
		if !regexp.MustCompile(regexp.QuoteMeta(want)).MatchString(out) {
			t.Errorf("ostree admin status lacks %q:\n%s", want, out)
		}
	}
	t.Logf("ostree admin status:\n%s", out)
}

// TestPeerStatusReadsImageOrigin: a deployment whose origin is a container
// image (container-image-reference=, as rpm-ostree writes it, plus
// strata's digest group) does not trouble ostree admin status.
func TestPeerStatusReadsImageOrigin(t *testing.T) {
	s, sr := newSysroot(t)
	ctx := context.Background()
	sysroottest.FakeOS{Version: "1"}.Commit(t, sr.Repo(), "fakeos/stable")
	imgref := "ostree-unverified-registry:registry.example/fakeos:stable"
	d, err := sr.Deploy(ctx, "fakeos", "fakeos/stable", sysroot.DeployOptions{Refspec: imgref, ImageDigest: "sha256:0123"})
	if err != nil {
		t.Fatal(err)
	}
	if d.Refspec != imgref || d.ImageDigest != "sha256:0123" {
		t.Errorf("Deploy = refspec %q, digest %q; want %q, sha256:0123", d.Refspec, d.ImageDigest, imgref)
	}
	got, out := ostreeStatus(t, s)
	if diff := cmp.Diff(names(sr.Deployments()), got); diff != "" {
		t.Errorf("ostree admin status deployments mismatch (-strata +ostree):\n%s\n%s", diff, out)
	}
	t.Logf("ostree admin status:\n%s", out)
}
