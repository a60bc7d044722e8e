package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A commit to a repository that publishes a summary warns that clients
// will not see it until the summary is regenerated; --update-summary
// regenerates it, signed with --sign-key, and refuses to drop a signature.
func TestCommitToSummarizedRepository(t *testing.T) {
	t.Parallel()
	r, tarData := cmtSetup(t)
	key := filepath.Join(t.TempDir(), "key")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := func(args ...string) (string, string, int) {
		out, errs, code := cmtRun(t, tarData, append([]string{"repo", "commit", "--repo", r, "--branch", "os/stable", "--tar", "-"}, args...)...)
		return strings.TrimSpace(out), errs, code
	}
	view := func() string { return publishMustRun(t, "repo", "summary", "--repo", r, "--view") }

	if _, errs, code := commit("--subject", "first"); code != exitOK || errs != "" {
		t.Fatalf("first commit, no summary yet = exit %d, stderr %q; want 0 and no warning", code, errs)
	}
	publishMustRun(t, "repo", "summary", "--repo", r)
	c2, errs, code := commit("--subject", "second")
	if code != exitOK || !strings.Contains(errs, "clients will not see os/stable at "+c2) || !strings.Contains(errs, "--update-summary") {
		t.Errorf("commit to a summarized repository = exit %d, stderr %q; want 0 and a warning naming the ref, repo summary and --update-summary", code, errs)
	}
	if strings.Contains(view(), c2) {
		t.Fatalf("summary lists %s without being regenerated", c2)
	}
	c3, errs, code := commit("--subject", "third", "--update-summary")
	if code != exitOK || errs != "" || !strings.Contains(view(), c3) {
		t.Errorf("commit --update-summary = exit %d, stderr %q; want 0, no warning, and the summary listing %s", code, errs, c3)
	}

	publishMustRun(t, "repo", "summary", "--repo", r, "--sign-key", key+".key")
	_, errs, code = commit("--subject", "fourth", "--update-summary")
	if code != exitUsage || !strings.Contains(errs, "--sign-key") {
		t.Errorf("commit --update-summary over a signed summary without --sign-key = exit %d (%q), want %d asking for --sign-key", code, errs, exitUsage)
	}
	if b, _ := os.ReadFile(filepath.Join(r, "refs/heads/os/stable")); strings.TrimSpace(string(b)) != c3 {
		t.Errorf("os/stable after the refused commit = %s, want it still at %s", b, c3)
	}
	c5, _, code := commit("--subject", "fifth", "--update-summary", "--sign-key", key+".key")
	if _, err := os.Stat(filepath.Join(r, "summary.sig")); code != exitOK || err != nil || !strings.Contains(view(), c5) {
		t.Errorf("commit --update-summary --sign-key = exit %d, summary.sig: %v; want 0, a signed summary listing %s", code, err, c5)
	}
}
