//go:build root && peer

package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestBenchmarkSysroot runs the sysroot ops with both tools on a small tree: every cell must
// pass its checks (kernel arguments, /etc merge, prune), both tools must end with the same
// deployments, and no mount may stay behind.
func TestBenchmarkSysroot(t *testing.T) {
	testutil.RequireRoot(t)
	ostree := testutil.Ostree(t)
	root := testutil.RepoRoot(t)
	bin := filepath.Join(t.TempDir(), "strata")
	build := exec.Command("go", "build", "-o", bin, "./cmd/strata")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/strata: %v\n%s", err, out)
	}
	tree := filepath.Join(t.TempDir(), "tree")
	for p, content := range map[string]string{
		"usr/bin/tool":          "#!/bin/sh\necho hi\n",
		"usr/lib/os-release":    "ID=bench\n",
		"etc/conf":              "a=1\n",
		"etc/hostname":          "tree\n",
		"var/lib/dpkg/.keep":    "",
		"usr/share/doc/x/ABOUT": "x\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(tree, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tree, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	work := t.TempDir()
	sysOps := slices.DeleteFunc(slices.Clone(ops), func(o op) bool { return !o.sysroot })
	o := options{
		corpora: []string{tree}, modes: []string{"archive"}, tools: []string{"strata", "ostree"},
		ops: sysOps, runs: 1, work: work, keep: true, timeout: defaultTimeout,
		strataBin: bin, ostreeBin: ostree,
	}
	var out, log bytes.Buffer
	failed, err := benchmark(context.Background(), o, &out, &log)
	if err != nil || failed {
		t.Fatalf("benchmark() = failed %v, %v; log:\n%s\nreport:\n%s", failed, err, log.String(), out.String())
	}
	report := out.String()
	if !strings.Contains(report, "### tree, sysroot (bare)") || strings.Contains(report, "### tree, archive") {
		t.Errorf("report: want one table, sysroot (bare), and none for archive:\n%s", report)
	}
	for _, name := range []string{"deploy", "redeploy", "undeploy-cleanup"} {
		for _, tool := range []string{"strata", "ostree"} {
			var row string
			for _, l := range strings.Split(report, "\n") {
				if strings.HasPrefix(l, "| "+name+" ") && strings.Contains(l, "| "+tool+" ") {
					row = l
				}
			}
			if !strings.HasSuffix(strings.TrimSpace(row), "| yes  |") {
				t.Errorf("row %s %s = %q, want same = yes", name, tool, row)
			}
		}
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	m, err := mountsUnder(f, work)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(m) > 0 {
		t.Errorf("mounts left behind: %q", m)
	}
	for _, tool := range []string{"strata", "ostree"} {
		if _, err := os.Stat(filepath.Join(work, "tree", "sysroot", tool, "run")); !os.IsNotExist(err) {
			t.Errorf("the %s run's sysroot is still there (%v), want it removed", tool, err)
		}
	}
}
