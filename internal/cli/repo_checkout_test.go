package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRepoCheckout(t *testing.T) {
	t.Parallel()
	v := inspVectors(t)
	for _, tc := range []struct {
		name      string
		repo      string
		args      []string
		wantFiles int64
		wantLinks bool
		check     string // a path that must exist in the checkout
	}{
		{"archive user mode", "repo-archive", []string{"--user-mode"}, 3003, false, "xdir/suid"},
		{"bare-user user mode", "repo-bare-user", []string{"-U"}, 3003, true, "big/f2999"},
		{"subpath", "repo-archive", []string{"-U", "--subpath", "/big"}, 3000, false, "f0000"},
		{"no verify", "repo-bare-user", []string{"-U", "--verify=false"}, 3003, true, "hello.txt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "c2")
			args := append([]string{"repo", "checkout", "--repo", filepath.Join(v, tc.repo), "test/ref", dest, "--json"}, tc.args...)
			out, errOut, code := inspRun(t, args...)
			if code != 0 {
				t.Fatalf("strata %v = exit %d, %s", args, code, errOut)
			}
			var got checkoutJSON
			if err := json.Unmarshal([]byte(out), &got); err != nil {
				t.Fatalf("strata %v printed %q: %v", args, out, err)
			}
			if got.Commit != inspC2 || got.Files != tc.wantFiles || (got.Hardlinked > 0) != tc.wantLinks || got.Dest != dest {
				t.Errorf("strata %v = %+v, want commit %s, %d files, hardlinks %v", args, got, inspC2, tc.wantFiles, tc.wantLinks)
			}
			if _, err := os.Lstat(filepath.Join(dest, tc.check)); err != nil {
				t.Errorf("checkout has no %s: %v", tc.check, err)
			}
		})
	}
}

func TestRepoCheckoutRefusesNonEmptyDest(t *testing.T) {
	t.Parallel()
	r := filepath.Join(inspVectors(t), "repo-archive")
	dest := t.TempDir()
	if err := os.WriteFile(filepath.Join(dest, "mine"), []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errOut, code := inspRun(t, "repo", "checkout", "--repo", r, "test/ref", dest, "-U")
	if code != 1 || out != "" || !strings.Contains(errOut, "cannot check out") || !strings.Contains(errOut, "not empty") {
		t.Errorf("strata repo checkout to a non-empty dir = exit %d, %q, %q, want exit 1 and \"cannot check out ... not empty\"", code, out, errOut)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "mine")); err != nil || string(b) != "keep" {
		t.Errorf("the destination's file is now %q, %v", b, err)
	}
}
