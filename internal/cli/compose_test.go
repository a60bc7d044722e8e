package cli

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/compose"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

func TestComposeManifestErrors(t *testing.T) {
	t.Parallel()
	repoPath, _ := cmtSetup(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("name: demo\nversion: \"1\"\nref: demo/x\npackages: [systemd]\nunits:\n  enable: [a.service, foo]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no manifest", []string{"compose", "--repo", repoPath}, exitUsage, "missing MANIFEST"},
		{"missing manifest", []string{"compose", filepath.Join(dir, "none.yaml"), "--repo", repoPath}, exitFailure, "cannot compose: reading manifest"},
		{"invalid manifest", []string{"compose", bad, "--repo", repoPath}, exitInvalid,
			bad + `:6:23: units.enable[1]: "foo" is not a unit name`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errOut, code := cmtRun(t, nil, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("strata %v = exit %d, stderr %q; want exit %d and %q", tc.args, code, errOut, tc.code, tc.want)
			}
		})
	}
	refs, err := os.ReadDir(filepath.Join(repoPath, "refs/heads"))
	if err != nil || len(refs) != 0 {
		t.Errorf("after failed composes, refs/heads has %d entries (%v), want none", len(refs), err)
	}
}

// commitWithPackages commits a one-file tree with strata.packages metadata.
func commitWithPackages(t *testing.T, r *repo.Repo, branch, content string, pkgs []compose.Package) ostree.Checksum {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	md := ostree.Metadata{{Key: ostree.MetaVersion, Value: gvariant.NewVariant("s", "1")}}
	if pkgs != nil {
		md = append(md, gvariant.DictEntry{Key: compose.MetaPackages, Value: compose.PackagesVariant(pkgs)})
	}
	c, _, err := repo.CommitTree(context.Background(), r, repo.DirSource(dir), repo.CommitOptions{
		Branch: branch, Timestamp: time.Unix(1, 0), Metadata: md, Parent: "none",
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestRepoDiffPackages(t *testing.T) {
	t.Parallel()
	repoPath, _ := cmtSetup(t)
	r, err := repo.Open(repoPath)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	a := commitWithPackages(t, r, "a", "one\n", []compose.Package{{Name: "bash", Version: "5.2-1"}, {Name: "libc6", Version: "2.36-9"}, {Name: "old", Version: "1"}})
	b := commitWithPackages(t, r, "b", "two\n", []compose.Package{{Name: "bash", Version: "5.2-1"}, {Name: "less", Version: "590-2"}, {Name: "libc6", Version: "2.36-10"}})
	plain := commitWithPackages(t, r, "plain", "two\n", nil)

	out, errOut, code := cmtRun(t, nil, "repo", "diff", "--repo", repoPath, a.String(), b.String())
	want := "M    /f\n\nUpgraded:\n  libc6 2.36-9 -> 2.36-10\nRemoved:\n  old 1\nAdded:\n  less 590-2\n"
	if code != 0 || out != want {
		t.Errorf("repo diff A B = exit %d, stdout %q, stderr %q; want %q", code, out, errOut, want)
	}

	out, _, code = cmtRun(t, nil, "repo", "diff", "--repo", repoPath, "--json", a.String(), b.String())
	var j diffJSON
	if err := json.Unmarshal([]byte(out), &j); err != nil || code != 0 {
		t.Fatalf("repo diff --json = exit %d, %q (%v)", code, out, err)
	}
	if j.Packages == nil {
		t.Fatalf("repo diff --json has no packages: %s", out)
	}
	if d := cmp.Diff([]compose.Package{{Name: "less", Version: "590-2"}}, j.Packages.Added); d != "" {
		t.Errorf("repo diff --json packages.added mismatch (-want +got):\n%s", d)
	}

	// Without strata.packages on one side the output is the plain path list.
	out, _, code = cmtRun(t, nil, "repo", "diff", "--repo", repoPath, a.String(), plain.String())
	if code != 0 || out != "M    /f\n" {
		t.Errorf("repo diff A plain = exit %d, %q, want only the path list", code, out)
	}
	out, _, _ = cmtRun(t, nil, "repo", "diff", "--repo", repoPath, "--json", a.String(), plain.String())
	if strings.Contains(out, "packages") {
		t.Errorf("repo diff --json A plain = %s, want no packages key", out)
	}
}
