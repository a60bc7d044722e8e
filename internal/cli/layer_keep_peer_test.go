//go:build root && peer

package cli

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestLayerKeptByDeployAndRebase: `strata deploy REV` and `strata rebase
// REMOTE:REF` on a node with layered packages derive them again on the
// new base, as rpm-ostree's deploy and rebase do: the new deployment runs
// a commit derived from REV with the packages (from the archive and a
// local .deb), its origin records the new base refspec and the layer. A
// base on which a layered package cannot be installed is refused before
// anything is deployed, with the package and apt's reason named.
func TestLayerKeptByDeployAndRebase(t *testing.T) {
	n := newLayerNode(t)
	n.makeBase(t, "1", marker("1"))
	publishMustRun(t, "deploy", "--sysroot", n.sys, "--os", "testos", "testos/stable")
	n.useTestSources(t, n.deployment(t))
	publishMustRun(t, "install", "--sysroot", n.sys, "hello-layer", buildDeb(t, t.TempDir(), needsOld))

	check := func(what string, base, refspec string) {
		t.Helper()
		d0 := n.deployment(t)
		if d0.BaseChecksum != base || !slices.Equal(d0.RequestedPackages, []string{"hello-layer"}) || len(d0.RequestedLocal) != 1 {
			t.Errorf("after %s: %+v, want base %s with hello-layer and needs-old layered", what, d0, base)
		}
		origin, err := os.ReadFile(d0.Path + ".origin")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(origin), "baserefspec="+refspec+"\n") || !strings.Contains(string(origin), "requested=hello-layer;\n") {
			t.Errorf("origin after %s:\n%s\nwant baserefspec=%s and the layered packages", what, origin, refspec)
		}
		for _, p := range []string{"hello-layer", "hello-lib", "needs-old"} {
			if got := dpkgList(t, d0.Path, p); !strings.HasPrefix(got, "ii") {
				t.Errorf("after %s, dpkg-query %s = %q, want installed", what, p, got)
			}
		}
		if _, err := os.Stat(filepath.Join(d0.Path, "usr/bin/hello-layer")); err != nil {
			t.Errorf("after %s, the layered file: %v", what, err)
		}
		checkDeployedTree(t, n.r, mustChecksum(t, d0.Checksum), d0.Path)
		noLeftovers(t, n.repoPath)
	}

	// deploy REV: the layer on REV.
	v2 := n.makeBaseOn(t, "testos/other", "2", marker("1.5"))
	publishMustRun(t, "deploy", "--sysroot", n.sys, "testos/other")
	check("deploy testos/other", v2.String(), "testos/other")
	if got := dpkgList(t, n.deployment(t).Path, "base-marker"); got != "ii 1.5" {
		t.Errorf("base-marker after deploy testos/other = %q, want the new base's 1.5", got)
	}

	// deploy of a base that breaks needs-old: refused, nothing deployed.
	n.makeBaseOn(t, "testos/broken", "3", marker("2"))
	before := nodeStatus(t, n.sys)
	code, out, errs := publishRun(t, "deploy", "--sysroot", n.sys, "testos/broken")
	if code == exitOK || !strings.Contains(errs, "needs-old") || !strings.Contains(errs, "base-marker") || !strings.Contains(errs, "cannot be applied") {
		t.Errorf("deploy of a base that breaks needs-old = exit %d (%s%s), want a failure naming needs-old and base-marker", code, out, errs)
	}
	after := nodeStatus(t, n.sys)
	if len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != before.Deployments[0].Checksum {
		t.Errorf("after the refused deploy the deployments are %+v, want them unchanged", after.Deployments)
	}
	noLeftovers(t, n.repoPath)

	// rebase REMOTE:REF: base 4 published, signed, in an archive
	// repository served on loopback.
	n.makeBaseOn(t, "testos/next", "4", marker("1.6"))
	work := t.TempDir()
	src, key, tree := filepath.Join(work, "src"), filepath.Join(work, "key"), filepath.Join(work, "tree")
	publishMustRun(t, "repo", "checkout", "--repo", n.repoPath, "testos/next", tree)
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	v4 := strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/next", "--tree", tree,
		"--metadata", "version=4", "--sign-key", key+".key"))
	publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
	srv := serveRepo(t, src)
	publishMustRun(t, "repo", "remote", "add", "--repo", n.repoPath, "fleet", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	publishMustRun(t, "rebase", "--sysroot", n.sys, "fleet:testos/next")
	check("rebase fleet:testos/next", v4, "fleet:testos/next")
}
