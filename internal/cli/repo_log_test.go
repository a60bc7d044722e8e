package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/testutil"
)

// Helpers of the inspection command tests (log, show, refs, ls, cat, diff,
// checkout); their names start with "insp".

// The -update flag rewrites the golden files. Another test file of the
// package may define it too, so it is looked up, not redefined.
func init() {
	if flag.Lookup("update") == nil {
		flag.Bool("update", false, "rewrite golden files under testdata/")
	}
}

// inspGolden compares got with testdata/inspect/NAME, or rewrites that
// file with -update.
func inspGolden(t *testing.T, name, got string) {
	t.Helper()
	p := filepath.Join("testdata", "inspect", name)
	if f := flag.Lookup("update"); f != nil && f.Value.String() == "true" {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("reading golden file (run with -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("output differs from %s (-want +got):\n%s", p, diff)
	}
}

// inspRun runs strata with args and returns stdout, stderr and the exit
// code.
func inspRun(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

// inspVectors returns a fresh copy of the ostree-written test vectors.
func inspVectors(t *testing.T) string {
	t.Helper()
	return testutil.Vectors(t)
}

// The commits of the test vectors (docs/formats/vectors.md): C2 on test/ref, parent C1.
const (
	inspC1 = "4e5608541a7900d8b604541ec7ffa70700a6dd3aabc7e71e145a25ac5f306a28"
	inspC2 = "33551e1f5b855ffea3595aed5983953c687ec4e2f96f3d6d00648ffdd647c194"
)

func TestRepoLogAndShow(t *testing.T) {
	t.Parallel()
	v := inspVectors(t)
	archive, bareUser := filepath.Join(v, "repo-archive"), filepath.Join(v, "repo-bare-user")
	for _, tc := range []struct {
		name   string
		args   []string
		golden string
	}{
		{"log", []string{"repo", "log", "--repo", archive, "test/ref"}, "log.txt"},
		{"log json", []string{"repo", "log", "--repo", bareUser, "test/ref", "--json"}, "log.json"},
		{"log of a checksum prefix", []string{"repo", "log", "--repo", archive, inspC1[:10]}, "log-c1.txt"},
		{"show with metadata", []string{"repo", "show", "--repo", archive, "test/ref"}, "show-c2.txt"},
		{"show with signatures", []string{"repo", "show", "--repo", archive, "test/ref^"}, "show-c1.txt"},
		{"show json", []string{"repo", "show", "--repo", archive, inspC1, "--json"}, "show-c1.json"},
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

func TestRepoLogTruncatedHistory(t *testing.T) {
	t.Parallel()
	r := filepath.Join(inspVectors(t), "repo-archive")
	if err := os.Remove(filepath.Join(r, "objects", inspC1[:2], inspC1[2:]+".commit")); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := inspRun(t, "repo", "log", "--repo", r, "test/ref")
	if code != 0 {
		t.Fatalf("strata repo log = exit %d, %s", code, errOut)
	}
	inspGolden(t, "log-truncated.txt", out)
	out, _, _ = inspRun(t, "repo", "log", "--repo", r, "test/ref", "--json")
	if !strings.Contains(out, `"truncated": true`) {
		t.Errorf("strata repo log --json = %s, want truncated: true", out)
	}
}

func TestRepoInspectErrors(t *testing.T) {
	t.Parallel()
	r := filepath.Join(inspVectors(t), "repo-archive")
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		wantErr  string
	}{
		{"log unknown ref", []string{"repo", "log", "--repo", r, "no/such"}, 1, "cannot show history"},
		{"log no rev", []string{"repo", "log", "--repo", r}, 2, "missing REV"},
		{"show unknown ref", []string{"repo", "show", "--repo", r, "no/such"}, 1, "cannot show commit"},
		{"show no repo", []string{"repo", "show", "--repo", filepath.Join(r, "nope"), "test/ref"}, 1, "cannot open repository"},
		{"ls missing path", []string{"repo", "ls", "--repo", r, "test/ref", "/nope"}, 1, "cannot list"},
		{"cat directory", []string{"repo", "cat", "--repo", r, "test/ref", "/xdir"}, exitInvalid, "is a directory"},
		{"refs create without rev", []string{"repo", "refs", "--repo", r, "--create", "x"}, 2, "NAME=REV"},
		{"refs create bad name", []string{"repo", "refs", "--repo", r, "--create", "-x=test/ref"}, 2, "invalid"},
		{"refs create and delete", []string{"repo", "refs", "--repo", r, "--create", "x=test/ref", "--delete", "y"}, 2, "cannot be combined"},
		{"refs delete unknown", []string{"repo", "refs", "--repo", r, "--delete", "no/such"}, 1, "cannot delete ref"},
		{"checkout no dest", []string{"repo", "checkout", "--repo", r, "test/ref"}, 2, "missing DEST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errOut, code := inspRun(t, tc.args...)
			if code != tc.wantCode || !strings.Contains(errOut, tc.wantErr) {
				t.Errorf("strata %v = exit %d, %q, want exit %d and %q", tc.args, code, errOut, tc.wantCode, tc.wantErr)
			}
		})
	}
}
