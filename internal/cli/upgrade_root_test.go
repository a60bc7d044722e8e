//go:build root

package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestUpgradeFollowsWhereTheCommitCameFrom deploys a ref pulled by --url,
// a local ref and a short checksum, and runs upgrade on each: the first
// keeps fetching from the server (its origin records the remote of the
// URL); the others say that nothing was fetched, with exit code 78,
// instead of "No update available".
func TestUpgradeFollowsWhereTheCommitCameFrom(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	work := t.TempDir()
	src, sys, key := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := func(repoPath, branch, v string) string {
		out := publishMustRun(t, "repo", "commit", "--repo", repoPath, "--branch", branch, "--tree", nodeTree(t, v),
			"--metadata", "version="+v, "--sign-key", key+".key", "--timestamp", "170000000"+v)
		if repoPath == src {
			publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
		}
		return strings.TrimSpace(out)
	}
	c1 := commit(src, "testos/stable", "1")
	srv := serveRepo(t, src)

	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	sysRepo := filepath.Join(sys, "ostree/repo")
	var pj pullJSON
	out := publishMustRun(t, "repo", "pull", "--repo", sysRepo, "--url", srv.URL, "--trusted-key", key+".pub", "--json", "testos/stable")
	if err := json.Unmarshal([]byte(out), &pj); err != nil || pj.Remote == "" {
		t.Fatalf("repo pull --url --json = %s (%v), want the remote it recorded", out, err)
	}
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "testos/stable")
	if got := nodeStatus(t, sys).Deployments[0].Refspec; got != pj.Remote+":testos/stable" {
		t.Errorf("origin after repo pull --url and deploy testos/stable = %q, want %q", got, pj.Remote+":testos/stable")
	}
	c2 := commit(src, "testos/stable", "2")
	var up upgradeJSON
	code, out, errs := publishRun(t, "upgrade", "--sysroot", sys, "--check", "--json")
	if err := json.Unmarshal([]byte(out), &up); code != exitOK || err != nil || !up.Available || up.Commit != c2 || !up.Fetched {
		t.Errorf("upgrade --check after a new commit on the server = exit %d, %s%s, want update available to %s, fetched", code, out, errs, c2)
	}

	// A local ref: nothing to fetch, and upgrade says so.
	commit(sysRepo, "local/dev", "3")
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "local/dev")
	for _, args := range [][]string{{"--check"}, {}} {
		code, out, errs := publishRun(t, append([]string{"upgrade", "--sysroot", sys}, args...)...)
		if code != exitNothingFetched || !strings.Contains(out, "local ref (local/dev); nothing fetched") || strings.Contains(out, "No update available") {
			t.Errorf("upgrade %v of a local ref = exit %d (%s%s), want %d saying nothing was fetched", args, code, out, errs, exitNothingFetched)
		}
	}

	// A short checksum pins the commit: the origin records it in full.
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", c1[:12])
	if got := nodeStatus(t, sys).Deployments[0].Refspec; got != c1 {
		t.Errorf("origin after deploy %s = %q, want the full checksum %s", c1[:12], got, c1)
	}
	code, out, errs = publishRun(t, "upgrade", "--sysroot", sys, "--check")
	if code != exitNothingFetched || !strings.Contains(out, "pinned commit") || !strings.Contains(out, "nothing fetched") {
		t.Errorf("upgrade --check of a pinned commit = exit %d (%s%s), want %d saying nothing was fetched", code, out, errs, exitNothingFetched)
	}
}
