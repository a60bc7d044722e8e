package pull_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
	"github.com/strata-os/strata/internal/repo"
)

// TestAttackRefNames asks for refs whose names try to leave refs/: they are refused before
// any request, and nothing is written.
func TestAttackRefNames(t *testing.T) {
	t.Parallel()
	for _, ref := range []string{
		"../../x", "os/../../x", "/etc/passwd", "os//stable", "os/./stable", "os/stable/", "-x", "",
		"os/stable@../../x", "os/stable@" + strings.Repeat("0", 63),
	} {
		t.Run(ref, func(t *testing.T) {
			t.Parallel()
			e := newAttackEnv(t, repo.ModeArchive, false)
			opts := e.options()
			opts.Refs = []string{ref}
			_, err := pull.Pull(context.Background(), e.client, opts)
			checkErr(t, err, errdefs.ErrInvalid)
			if reqs := e.srv.Requests(); len(reqs) > 0 {
				t.Errorf("Pull(%q) made %d requests (first %s), want none", ref, len(reqs), reqs[0].Path)
			}
			checkNothingOutside(t, e)
		})
	}
}

// checkNothingOutside asserts that the client repository's parent holds nothing but it, and
// that the repository has no ref.
func checkNothingOutside(t *testing.T, e *attackEnv) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Dir(e.client.Path()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		var names []string
		for _, d := range ents {
			names = append(names, d.Name())
		}
		t.Errorf("beside the client repository: %v, want nothing", names)
	}
	refs, err := e.client.ListRefs()
	if err != nil || len(refs) > 0 {
		t.Errorf("ListRefs() = %v, %v; want none", refs, err)
	}
}

// TestAttackSummaryRefNames publishes a summary that lists, besides the ref the client wants,
// refs named to escape refs/: the pull of the wanted ref succeeds and writes nothing else.
func TestAttackSummaryRefNames(t *testing.T) {
	t.Parallel()
	e := newAttackEnv(t, repo.ModeArchive, false)
	data := e.src.Read(e.next.CommitObject())
	cm := e.src.ReadCommit(e.next.Commit)
	sum := &ostree.Summary{}
	for _, name := range []string{"../../x", "../../../../tmp/evil", attackRef, "os/../../y"} {
		sum.Refs = append(sum.Refs, ostree.NewSummaryRef(name, data, cm))
	}
	e.src.PutSummary(sum)
	if _, err := pull.Pull(context.Background(), e.client, e.options()); err != nil {
		t.Fatalf("Pull(%s) with hostile names beside it in the summary: %v", attackRef, err)
	}
	refs, err := e.client.ListRefs()
	if err != nil || len(refs) != 1 || refs[0].Name != attackRef {
		t.Errorf("ListRefs() = %v, %v; want only %s", refs, err, attackRef)
	}
	ents, _ := os.ReadDir(filepath.Dir(e.client.Path()))
	if len(ents) != 1 {
		t.Errorf("beside the client repository: %d entries, want none", len(ents)-1)
	}
	// Asking for one of them by name is refused.
	opts := e.options()
	opts.Refs = []string{"../../x"}
	_, err = pull.Pull(context.Background(), e.client, opts)
	checkErr(t, err, errdefs.ErrInvalid)
}

// TestAttackRemoteRefContent serves refs/heads/REF files that are not a checksum.
func TestAttackRemoteRefContent(t *testing.T) {
	t.Parallel()
	for _, content := range []string{"../../../etc/passwd\n", "ref: refs/heads/other\n", strings.Repeat("a", 65), ""} {
		t.Run(content, func(t *testing.T) {
			t.Parallel()
			e := newAttackEnv(t, repo.ModeArchive, false)
			e.srv.Handle(pulltest.Path("refs/heads/"+attackRef), pulltest.Body([]byte(content)))
			_, err := pull.Pull(context.Background(), e.client, e.options())
			checkErr(t, err, errdefs.ErrCorrupt, attackRef)
			checkNothingOutside(t, e)
		})
	}
}

// rawDirTree serializes a dirtree without any of the checks that ParseDirTree makes.
func rawDirTree(t *testing.T, files []ostree.TreeFile, dirs []ostree.TreeDir) []byte {
	t.Helper()
	fs := make([]any, len(files))
	for i, f := range files {
		fs[i] = gvariant.Tuple{f.Name, f.Checksum[:]}
	}
	ds := make([]any, len(dirs))
	for i, d := range dirs {
		ds[i] = gvariant.Tuple{d.Name, d.Tree[:], d.Meta[:]}
	}
	b, err := gvariant.Marshal(gvariant.MustType("(a(say)a(sayay))"), gvariant.Tuple{fs, ds})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAttackDirTreeNames publishes commits whose trees name entries so that a checkout would
// leave its directory (or be ambiguous): the dirtree must be refused when it is parsed, before
// anything it names is fetched or the dirtree is stored.
func TestAttackDirTreeNames(t *testing.T) {
	t.Parallel()
	type entries struct {
		files []string
		dirs  []string
	}
	tests := []struct {
		name string
		e    entries
	}{
		{"file named ..", entries{files: []string{".."}}},
		{"file named .", entries{files: []string{"."}}},
		{"file with a slash", entries{files: []string{"etc/passwd"}}},
		{"file climbing out", entries{files: []string{"../../etc/shadow"}}},
		{"empty file name", entries{files: []string{""}}},
		{"directory named ..", entries{dirs: []string{".."}}},
		{"directory with a slash", entries{dirs: []string{"a/../.."}}},
		{"unsorted files", entries{files: []string{"b", "a"}}},
		{"duplicate files", entries{files: []string{"a", "a"}}},
		{"file and directory of one name", entries{files: []string{"a"}, dirs: []string{"a"}}},
	}
	for _, tt := range tests {
		for _, nested := range []bool{false, true} {
			name := tt.name + "/root"
			if nested {
				name = tt.name + "/in usr"
			}
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				e := newAttackEnv(t, repo.ModeBareUser, true)
				content := e.base.Files["usr/bin/tool"]
				var files []ostree.TreeFile
				for _, n := range tt.e.files {
					files = append(files, ostree.TreeFile{Name: n, Checksum: content})
				}
				var dirs []ostree.TreeDir
				for _, n := range tt.e.dirs {
					dirs = append(dirs, ostree.TreeDir{Name: n, Tree: ostree.EmptyDirTree, Meta: e.base.Meta})
				}
				hostile := e.src.PutObject(ostree.ObjectDirTree, rawDirTree(t, files, dirs))
				root := hostile.Checksum
				if nested {
					root = e.src.PutObject(ostree.ObjectDirTree, ostree.DirTree{Dirs: []ostree.TreeDir{
						{Name: "usr", Tree: hostile.Checksum, Meta: e.base.Meta},
					}}.Marshal()).Checksum
				}
				cm := e.src.ReadCommit(e.next.Commit)
				cm.RootTree = root
				evil := e.src.PutCommit(cm)
				e.src.SetRef(attackRef, evil)
				_, err := pull.Pull(context.Background(), e.client, e.options())
				checkErr(t, err, errdefs.ErrCorrupt, hostile.Checksum.String())
				checkAftermath(t, e, hostile, e.base.Commit)
				if !errors.Is(err, errdefs.ErrCorrupt) {
					return
				}
				for _, r := range e.srv.Requests() {
					if strings.HasSuffix(r.Path, ".filez") {
						t.Errorf("the client fetched %s named by a refused dirtree", r.Path)
					}
				}
				e.src.SetRef(attackRef, e.next.Commit)
				checkHonestPull(t, e, e.options())
			})
		}
	}
}
