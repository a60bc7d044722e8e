//go:build peer

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestBenchmarkOstree runs the whole harness against the ostree binary alone on a small tree:
// every op must succeed in both modes, and the JSON must hold one cell per op and mode.
func TestBenchmarkOstree(t *testing.T) {
	ostree := testutil.Ostree(t)
	tree := filepath.Join(t.TempDir(), "tree")
	for _, d := range []string{"usr/bin", "etc"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tree, "usr/bin/tool"), []byte("#!/bin/sh\necho hi\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc/conf"), []byte("a=1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(tree, "bin")); err != nil {
		t.Fatal(err)
	}
	jsonOut := filepath.Join(t.TempDir(), "out.json")
	// The repository ops; the sysroot ops need root and have their own test.
	repoOps := slices.DeleteFunc(slices.Clone(ops), func(o op) bool { return o.sysroot })
	o := options{
		corpora: []string{tree}, modes: []string{"archive", "bare-user"}, tools: []string{"ostree"},
		ops: repoOps, runs: 2, jsonOut: jsonOut, work: t.TempDir(), timeout: defaultTimeout, ostreeBin: ostree,
	}
	var out, log bytes.Buffer
	failed, err := benchmark(context.Background(), o, &out, &log)
	if err != nil || failed {
		t.Fatalf("benchmark() = failed %v, %v; log:\n%s", failed, err, log.String())
	}
	for _, want := range []string{"### tree, archive", "### tree, bare-user", "6 entries"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, out.String())
		}
	}
	// The operation column is as wide as the longest op name.
	if !regexp.MustCompile(`\| commit +\| ostree \|`).MatchString(out.String()) {
		t.Errorf("report lacks a row for commit by ostree:\n%s", out.String())
	}
	var got struct{ Results []cell }
	b, err := os.ReadFile(jsonOut)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if n := len(got.Results); n != 2*len(repoOps) {
		t.Fatalf("JSON has %d results, want %d", n, 2*len(repoOps))
	}
	for _, c := range got.Results {
		if c.Failed || len(c.Samples) != 2 || c.Median.Wall <= 0 {
			t.Errorf("cell %s %s: failed %v (%s), %d samples, median wall %v", c.Mode, c.Op, c.Failed, c.Error, len(c.Samples), c.Median.Wall)
		}
		// Every pull counts its bytes on the wire: through the delaying proxy, or by the
		// counting pull made before a zero-latency op's measured runs.
		if strings.HasPrefix(c.Op, "pull") && c.Median.Bytes <= 0 {
			t.Errorf("cell %s %s: transferred %d bytes, want a count", c.Mode, c.Op, c.Median.Bytes)
		}
		if c.Op == "commit" && !checksumRE.MatchString(c.Result) {
			t.Errorf("commit result %q is not a checksum", c.Result)
		}
	}
}
