package cli

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

func TestDefaultRepo(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		booted  bool
		want    string
		wantErr bool
	}{
		{"OSTREE_REPO wins", map[string]string{"OSTREE_REPO": "/srv/r", "OSTREE_SYSROOT": "/mnt"}, true, "/srv/r", false},
		{"booted node", nil, true, "/ostree/repo", false},
		{"OSTREE_SYSROOT", map[string]string{"OSTREE_SYSROOT": "/mnt"}, false, "/mnt/ostree/repo", false},
		{"nothing", nil, false, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := env{getenv: func(k string) string { return tc.vars[k] }, booted: func() bool { return tc.booted }}
			got, err := e.defaultRepo()
			var ue usageError
			if got != tc.want || (err != nil) != tc.wantErr || (err != nil && !errors.As(err, &ue)) {
				t.Errorf("defaultRepo() = %q, %v; want %q, error %v (a usage error)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// Without --repo, the repo verbs use $OSTREE_REPO, else the repository of
// $OSTREE_SYSROOT, the sysroot the node verbs then default to.
func TestRepoFlagDefaults(t *testing.T) {
	dir := t.TempDir()
	r := filepath.Join(dir, "r")
	publishMustRun(t, "repo", "init", "--repo", r, "--mode", "archive")
	c := publishCommit(t, r)

	t.Setenv("OSTREE_REPO", r)
	if code, out, errs := publishRun(t, "repo", "log", "os/stable"); code != exitOK || !strings.Contains(out, c.String()) {
		t.Errorf("repo log os/stable with OSTREE_REPO = exit %d (%s%s), want the log of %s", code, out, errs, c)
	}

	t.Setenv("OSTREE_REPO", "")
	sys := filepath.Join(dir, "sys")
	t.Setenv("OSTREE_SYSROOT", sys)
	publishMustRun(t, "repo", "init", "--mode", "bare-user")
	if code, _, errs := publishRun(t, "repo", "refs", "--repo", filepath.Join(sys, "ostree/repo")); code != exitOK {
		t.Errorf("repo init without --repo under OSTREE_SYSROOT made no repository at %s/ostree/repo: %s", sys, errs)
	}
	cmd, _, err := NewRootCommand().Find([]string{"status"})
	if err != nil {
		t.Fatal(err)
	}
	if got := cmd.Flags().Lookup("sysroot").DefValue; got != sys {
		t.Errorf("status --sysroot default with OSTREE_SYSROOT=%s = %q, want the same sysroot", sys, got)
	}

	t.Setenv("OSTREE_SYSROOT", "")
	if hostEnv().booted() {
		return // a booted node has a default repository: TestDefaultRepo covers this case
	}
	if code, _, errs := publishRun(t, "repo", "refs"); code != exitUsage || !strings.Contains(errs, "OSTREE_REPO") {
		t.Errorf("repo refs with no repository anywhere = exit %d (%q), want %d naming --repo and OSTREE_REPO", code, errs, exitUsage)
	}
}
