package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/graph"
)

// graph build turns a ref's history into inputs the server reads, keeps what an operator wrote
// into the updates file, and refuses a version whose content changed.
func TestGraphBuild(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, tree, out := filepath.Join(dir, "repo"), filepath.Join(dir, "tree"), filepath.Join(dir, "graph")
	must := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := publishRun(t, args...)
		if code != 0 {
			t.Fatalf("strata %s = exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	must("repo", "init", "--repo", r, "--mode", "archive")
	os.MkdirAll(tree, 0o755)
	var sums []string
	for i, v := range []string{"1.0", "", "2.0"} {
		os.WriteFile(filepath.Join(tree, "f"), []byte{byte(i)}, 0o644)
		args := []string{"repo", "commit", "--repo", r, "--branch", "os/stable", "--tree", tree, "--timestamp", "1700000000"}
		if v != "" {
			args = append(args, "--metadata", "version="+v)
		}
		sums = append(sums, strings.TrimSpace(must(args...)))
	}
	must("graph", "build", "--repo", r, "--ref", "os/stable", "--stream", "stable", "--out", out, "--arch", "x86_64")
	var ri graph.ReleaseIndex
	b, _ := os.ReadFile(filepath.Join(out, "releases.json"))
	if err := json.Unmarshal(b, &ri); err != nil || len(ri.Releases) != 2 || ri.Releases[0].Version != "1.0" ||
		ri.Releases[1].Commits[0].Checksum != sums[2] || ri.Releases[1].Commits[0].Architecture != "x86_64" {
		t.Fatalf("releases.json = %s (%v), want 1.0 and 2.0 (the unversioned commit skipped)", b, err)
	}
	// An operator marks 1.0 a barrier; a rebuild keeps it.
	upd := filepath.Join(out, "updates", "stable.json")
	b, _ = os.ReadFile(upd)
	os.WriteFile(upd, []byte(strings.Replace(string(b), `"version": "1.0",
      "metadata": {`, `"version": "1.0",
      "metadata": {"barrier": {"reason": "kept"},`, 1)), 0o644)
	must("graph", "build", "--repo", r, "--ref", "os/stable", "--stream", "stable", "--out", out, "--arch", "x86_64")
	f, _ := os.Open(upd)
	u, err := graph.ParseUpdates(f)
	f.Close()
	if err != nil || len(u.Releases) != 2 || u.Releases[0].Metadata.Barrier == nil || u.Releases[0].Metadata.Barrier.Reason != "kept" {
		t.Fatalf("updates after a rebuild = %+v, %v; want the operator's barrier kept", u, err)
	}
	g := graph.Build(ri, u, graph.Scope{Basearch: "x86_64"})
	if len(g.Edges) != 1 || g.Nodes[g.Edges[0][1]].Version != "2.0" {
		t.Errorf("graph of the built inputs = %+v, want one edge 1.0 → 2.0", g)
	}
	// The same version with other content is refused and the files stay.
	before, _ := os.ReadFile(filepath.Join(out, "releases.json"))
	os.WriteFile(filepath.Join(tree, "f"), []byte("changed"), 0o644)
	must("repo", "commit", "--repo", r, "--branch", "os/stable", "--tree", tree, "--metadata", "version=2.0")
	code, _, stderr := publishRun(t, "graph", "build", "--repo", r, "--ref", "os/stable", "--stream", "stable", "--out", out, "--arch", "x86_64")
	after, _ := os.ReadFile(filepath.Join(out, "releases.json"))
	if code == 0 || !strings.Contains(stderr, `"2.0"`) || string(before) != string(after) {
		t.Errorf("graph build with a changed 2.0 = exit %d (%s), files changed: %v; want a refusal naming 2.0", code, stderr, string(before) != string(after))
	}
}
