//go:build peer

package repo

import (
	"strings"
	"testing"
)

// peerFsck runs `ostree fsck` on the repository and fails the test unless
// libostree finds it clean.
func peerFsck(t *testing.T, repo string) {
	t.Helper()
	out := runOstree(t, "--repo="+repo, "fsck")
	if !strings.Contains(out, "no errors found") {
		t.Fatalf("ostree fsck %s:\n%s\nwant no errors found", repo, out)
	}
}
