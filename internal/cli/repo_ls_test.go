package cli

import (
	"path/filepath"
	"testing"
)

func TestRepoLsCatDiff(t *testing.T) {
	t.Parallel()
	v := inspVectors(t)
	archive, bareUser := filepath.Join(v, "repo-archive"), filepath.Join(v, "repo-bare-user")
	for _, tc := range []struct {
		name   string
		args   []string
		golden string
	}{
		{"ls recursive", []string{"repo", "ls", "--repo", archive, "test/ref^", "-R"}, "ls-c1-recursive.txt"},
		{"ls checksums and xattrs", []string{"repo", "ls", "--repo", bareUser, "test/ref^", "/", "-C", "-X"}, "ls-c1-checksums-xattrs.txt"},
		{"ls directory", []string{"repo", "ls", "--repo", archive, "test/ref", "/xdir"}, "ls-c2-xdir.txt"},
		{"ls json", []string{"repo", "ls", "--repo", bareUser, "test/ref", "/xdir", "-R", "--json"}, "ls-c2-xdir.json"},
		{"ls file", []string{"repo", "ls", "--repo", archive, "test/ref", "hello.txt"}, "ls-c2-hello.txt"},
		{"cat", []string{"repo", "cat", "--repo", bareUser, "test/ref^", "/bin/run.sh"}, "cat-run.sh.txt"},
		{"cat binary", []string{"repo", "cat", "--repo", archive, "test/ref", "/xdir/suid"}, "cat-suid.bin"},
		{"diff", []string{"repo", "diff", "--repo", archive, "test/ref", "test/ref^"}, "diff-c2-c1.txt"},
		{"diff json", []string{"repo", "diff", "--repo", bareUser, "test/ref", "test/ref^", "--json"}, "diff-c2-c1.json"},
		{"diff same", []string{"repo", "diff", "--repo", archive, "test/ref", inspC2, "--json"}, "diff-same.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := inspRun(t, tc.args...)
			if code != 0 {
				t.Fatalf("strata %v = exit %d, %s", tc.args, code, errOut)
			}
			inspGolden(t, tc.golden, out)
		})
	}
}

func TestRepoRefs(t *testing.T) {
	t.Parallel()
	r := filepath.Join(inspVectors(t), "repo-archive")
	for _, step := range []struct {
		args   []string
		golden string // "": no output expected
	}{
		{[]string{"--create", "os/stable=test/ref^"}, ""},
		{[]string{"--create", "os/testing=" + inspC2[:12]}, ""},
		{nil, "refs-created.txt"},
		{[]string{"--json"}, "refs-created.json"},
		{[]string{"--delete", "os/stable"}, ""},
		{nil, "refs-deleted.txt"},
	} {
		args := append([]string{"repo", "refs", "--repo", r}, step.args...)
		out, errOut, code := inspRun(t, args...)
		if code != 0 {
			t.Fatalf("strata %v = exit %d, %s", args, code, errOut)
		}
		if step.golden == "" {
			if out != "" {
				t.Errorf("strata %v printed %q, want nothing", args, out)
			}
			continue
		}
		inspGolden(t, step.golden, out)
	}
}
