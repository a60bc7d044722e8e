//go:build peer

package cli

import (
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/testutil"
)

// The inspection commands print what ostree prints for the same
// repositories; show adds metadata sections after ostree's text.
func TestRepoInspectMatchesOstree(t *testing.T) {
	t.Parallel()
	ostree := testutil.Ostree(t)
	v := inspVectors(t)
	for _, repoName := range []string{"repo-archive", "repo-bare-user", "osrepo-archive", "etcrepo-archive"} {
		r := filepath.Join(v, repoName)
		refs, err := exec.Command(ostree, "--repo="+r, "refs").Output()
		if err != nil {
			t.Fatalf("ostree refs: %v", err)
		}
		ref := strings.Fields(string(refs))[0]
		for _, args := range [][]string{
			{"refs"},
			{"log", ref},
			{"ls", "-R", ref},
			{"ls", "-R", "-C", "-X", ref},
			{"ls", ref, "/"},
			{"diff", ref + "^", ref},
			{"diff", ref, ref + "^"},
			{"show", ref},
			{"show", ref + "^"},
		} {
			t.Run(repoName+" "+strings.Join(args, " "), func(t *testing.T) {
				t.Parallel()
				want, err := exec.Command(ostree, append([]string{"--repo=" + r}, args...)...).Output()
				if err != nil {
					t.Fatalf("ostree %v: %v", args, err)
				}
				got, errOut, code := inspRun(t, append([]string{"repo", args[0], "--repo", r}, args[1:]...)...)
				if code != 0 {
					t.Fatalf("strata repo %v = exit %d, %s", args, code, errOut)
				}
				if args[0] == "show" {
					// ostree prints the commit; strata adds its metadata.
					if !strings.HasPrefix(got, string(want)) {
						t.Errorf("strata repo %v does not start with ostree's output:\n%s\nstrata:\n%s", args, want, got)
					}
					return
				}
				if diff := cmp.Diff(string(want), got); diff != "" {
					t.Errorf("strata repo %v differs from ostree (-ostree +strata):\n%s", args, diff)
				}
			})
		}
	}
}
