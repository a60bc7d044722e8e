//go:build root && peer

package cli

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/agent"
	"github.com/strata-os/strata/internal/sysroot"
)

// TestAgentKeepsPendingLayer: on a booted node where `strata install` made a layered
// deployment that has not booted yet, the update agent stages the next release from that
// pending deployment, as `strata upgrade` does: the staged deployment is the layer derived again
// on the new base, with the request in its origin. Staging from the booted deployment would
// deploy the bare release and lose the package the admin installed.
func TestAgentKeepsPendingLayer(t *testing.T) {
	n := newLayerNode(t)
	n.makeBase(t, "1", marker("1"))
	// The bases are published signed on loopback, as a fleet's server does: the agent pulls
	// from the origin's remote.
	work := t.TempDir()
	src, key := filepath.Join(work, "src"), filepath.Join(work, "key")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	publish := func(v string) string {
		tree := filepath.Join(t.TempDir(), "tree")
		publishMustRun(t, "repo", "checkout", "--repo", n.repoPath, "testos/stable", tree)
		c := strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable", "--tree", tree,
			"--metadata", "version="+v, "--sign-key", key+".key"))
		publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
		return c
	}
	c1 := publish("1")
	srv := serveRepo(t, src)
	publishMustRun(t, "repo", "remote", "add", "--repo", n.repoPath, "fleet", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	publishMustRun(t, "repo", "pull", "--repo", n.repoPath, "fleet", "testos/stable")
	publishMustRun(t, "deploy", "--sysroot", n.sys, "--os", "testos", "fleet:testos/stable")
	booted := n.deployment(t)
	n.useTestSources(t, booted)
	// The kernel's command line names the booted deployment, as the boot loader's ostree= does.
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	writeTestFile(t, cmdline, "root=LABEL=root ostree=/"+strings.TrimPrefix(booted.Path, n.sys+"/")+"\n")
	publishMustRun(t, "install", "--sysroot", n.sys, "--proc-cmdline", cmdline, buildDeb(t, t.TempDir(), needsOld))
	if d0 := n.deployment(t); d0.BaseChecksum != c1 || len(d0.RequestedLocal) != 1 {
		t.Fatalf("after install: default deployment %+v, want needs-old layered on %s", d0, c1)
	}

	n.makeBase(t, "2", marker("1.5"))
	c2 := publish("2")
	d := &sysrootDeployer{cmd: &cobra.Command{}, path: n.sys, opts: []sysroot.Option{sysroot.WithProcCmdline(cmdline)}}
	ns, err := d.Status(context.Background())
	if err != nil || ns.Booted.Payload != c1 {
		t.Fatalf("agent's node status = %+v, %v; want %s booted", ns, err, c1)
	}
	if err := d.Stage(context.Background(), agent.Release{Version: "2", Payload: c2, Scheme: "checksum"}, func(int64, int64) {}); err != nil {
		t.Fatalf("Stage(2) = %v", err)
	}
	st := nodeStatus(t, n.sys)
	s0 := st.Deployments[0]
	if !s0.Staged || s0.BaseChecksum != c2 || len(s0.RequestedLocal) != 1 || !strings.HasSuffix(s0.RequestedLocal[0], ":needs-old_1.0_all") {
		t.Fatalf("staged deployment = %+v, want needs-old layered on %s", s0, c2)
	}
	if got := dpkgList(t, s0.Path, "needs-old"); !strings.HasPrefix(got, "ii") {
		t.Errorf("dpkg-query needs-old in the staged deployment = %q, want installed", got)
	}
	if got := dpkgList(t, s0.Path, "base-marker"); got != "ii 1.5" {
		t.Errorf("base-marker in the staged deployment = %q, want the new base's 1.5", got)
	}
	noLeftovers(t, n.repoPath)
}
