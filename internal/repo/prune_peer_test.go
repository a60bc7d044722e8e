//go:build peer

package repo

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/testutil"
)

// runOstree runs /usr/bin/ostree and fails the test on a non-zero exit.
func runOstree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(testutil.Ostree(t), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestPrunePeerFsckAndLog prunes history written through Txn and checks
// that libostree still accepts the repository and shows the cut history.
func TestPrunePeerFsckAndLog(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeArchive, ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			fx := newPruneFixture(t, mode)
			st, err := Prune(context.Background(), fx.r, PruneOptions{Depth: 0})
			if err != nil {
				t.Fatal(err)
			}
			if st.Commits != 3 {
				t.Errorf("Prune(depth 0) deleted %d commits, want C1, C2 and the orphan", st.Commits)
			}
			out := runOstree(t, "--repo="+fx.r.Path(), "fsck")
			if !strings.Contains(out, "no errors found") {
				t.Errorf("ostree fsck after prune:\n%s\nwant no errors found", out)
			}
			log := runOstree(t, "--repo="+fx.r.Path(), "log", "main")
			if !strings.Contains(log, "commit "+fx.c3.Commit.String()) || strings.Contains(log, "commit "+fx.c2.Commit.String()) ||
				!strings.Contains(log, "History beyond this commit not fetched") {
				t.Errorf("ostree log main after prune --depth 0:\n%s\nwant only %s, then the history-not-fetched line", log, fx.c3.Commit)
			}
			runOstree(t, "--repo="+fx.r.Path(), "log", "ostree/0/1/0")
		})
	}
}

// TestPruneMatchesOstreePrune prunes two copies of a repository that
// ostree wrote, one with `ostree prune --refs-only --depth=N` and one
// with Prune, and compares what is left.
func TestPruneMatchesOstreePrune(t *testing.T) {
	t.Parallel()
	for _, depth := range []int{0, 1, -1} {
		t.Run(fmt.Sprintf("depth %d", depth), func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			src := filepath.Join(base, "src")
			runOstree(t, "--repo="+src, "init", "--mode=archive")
			tree := filepath.Join(base, "tree")
			for i := 1; i <= 4; i++ {
				for _, f := range []struct{ path, data string }{
					{"usr/share/common", "common\n"},
					{fmt.Sprintf("usr/lib/v%d", i), fmt.Sprintf("version %d\n", i)},
					{"etc/os-release", fmt.Sprintf("VERSION_ID=%d\n", i)},
				} {
					p := filepath.Join(tree, f.path)
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, []byte(f.data), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				branch := "os/main"
				if i == 2 {
					branch = "os/other"
				}
				runOstree(t, "--repo="+src, "commit", "-b", branch, "--tree=dir="+tree, fmt.Sprintf("--timestamp=@%d", 1700000000+i), "-s", fmt.Sprintf("v%d", i))
			}
			// A commit without a ref: both prunes delete it.
			runOstree(t, "--repo="+src, "commit", "--orphan", "--tree=dir="+tree, "--timestamp=@1700000099")
			theirs, ours := filepath.Join(base, "theirs"), filepath.Join(base, "ours")
			for _, dst := range []string{theirs, ours} {
				if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
					t.Fatalf("cp -a: %v\n%s", err, out)
				}
			}
			runOstree(t, "--repo="+theirs, "prune", "--refs-only", fmt.Sprintf("--depth=%d", depth))
			r, err := Open(ours)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if _, err := Prune(context.Background(), r, PruneOptions{Depth: depth}); err != nil {
				t.Fatal(err)
			}
			list := func(repo string) []string {
				rr, err := Open(repo)
				if err != nil {
					t.Fatal(err)
				}
				defer rr.Close()
				objs, err := rr.listLoose()
				if err != nil {
					t.Fatal(err)
				}
				names := make([]ostree.ObjectName, len(objs))
				for i, o := range objs {
					names[i] = o.name
				}
				var out []string
				for _, n := range sortedNames(names) {
					out = append(out, n.String())
				}
				return out
			}
			if diff := cmp.Diff(list(theirs), list(ours)); diff != "" {
				t.Errorf("objects left by Prune(depth %d) differ from ostree prune's (-ostree +strata):\n%s", depth, diff)
			}
			runOstree(t, "--repo="+ours, "fsck")
		})
	}
}
