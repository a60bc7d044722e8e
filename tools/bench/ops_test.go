package main

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestParseChecksum(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, want string
		wantErr        bool
	}{
		{name: "bare", in: sumA + "\n", want: sumA},
		{name: "last line wins", in: "Content Written: 12\n" + sumA + "\n\n", want: sumA},
		{name: "empty", in: "", wantErr: true},
		{name: "short", in: sumA[:63], wantErr: true},
		{name: "uppercase", in: "C34BD5CCD05C0000000000000000000000000000000000000000000000000000", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseChecksum(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("parseChecksum(%q) = %q, %v; want %q, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestSelectOps(t *testing.T) {
	t.Parallel()
	names := func(ops []op) []string {
		var n []string
		for _, o := range ops {
			n = append(n, o.name)
		}
		return n
	}
	all, err := selectOps("all")
	if err != nil || !slices.Equal(names(all), []string{"commit", "recommit", "checkout", "fsck",
		"pull", "pull-20ms", "pull-incr-20ms", "pull-serve", "pull-serve-20ms", "pull-incr-serve-20ms",
		"deploy", "redeploy", "undeploy-cleanup"}) {
		t.Errorf(`selectOps("all") = %v, %v`, names(all), err)
	}
	got, err := selectOps("fsck, commit")
	if err != nil || !slices.Equal(names(got), []string{"commit", "fsck"}) {
		t.Errorf(`selectOps("fsck, commit") = %v, %v; want run order [commit fsck]`, names(got), err)
	}
	if _, err := selectOps("commit,pul"); err == nil {
		t.Error(`selectOps("commit,pul") succeeded, want an unknown-op error`)
	}
}

func TestCLIArgv(t *testing.T) {
	t.Parallel()
	s, o := strataCLI{bin: "strata"}, ostreeCLI{bin: "ostree"}
	tests := []struct {
		name      string
		got, want []string
	}{
		{"strata init", s.initRepo("R", "bare-user"), []string{"strata", "repo", "init", "--repo", "R", "--mode", "bare-user"}},
		{"strata commit", s.commit("R", "b", "T"), []string{"strata", "repo", "commit", "--repo", "R", "--branch", "b", "--tree", "T", "--subject", "s", "--timestamp", "1700000000"}},
		{"strata checkout", s.checkout("R", "archive", "b", "D"), []string{"strata", "repo", "checkout", "--repo", "R", "b", "D"}},
		{"strata bare-user checkout", s.checkout("R", "bare-user", "b", "D"), []string{"strata", "repo", "checkout", "--repo", "R", "-U", "b", "D"}},
		{"ostree init", o.initRepo("R", "archive"), []string{"ostree", "--repo=R", "init", "--mode=archive"}},
		{"ostree commit", o.commit("R", "b", "T"), []string{"ostree", "--repo=R", "commit", "-b", "b", "--tree=dir=T", "-s", "s", "--timestamp=@1700000000"}},
		{"ostree archive checkout", o.checkout("R", "archive", "b", "D"), []string{"ostree", "--repo=R", "checkout", "b", "D"}},
		{"ostree bare-user checkout", o.checkout("R", "bare-user", "b", "D"), []string{"ostree", "--repo=R", "checkout", "-U", "b", "D"}},
		{"ostree fsck", o.fsck("R"), []string{"ostree", "--repo=R", "fsck"}},
	}
	for _, tt := range tests {
		if !slices.Equal(tt.got, tt.want) {
			t.Errorf("%s: argv = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestCountEntries(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "a", "f"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("f", filepath.Join(dir, "a", "l")); err != nil {
		t.Fatal(err)
	}
	if got, err := countEntries(dir); err != nil || got != "4 entries" {
		t.Errorf("countEntries() = %q, %v; want \"4 entries\"", got, err)
	}
}
