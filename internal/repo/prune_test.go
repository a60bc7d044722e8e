package repo

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// pruneFixture is a repository with every kind of root prune knows:
//
//	main:                 C1 <- C2 <- C3   (C1 has detached metadata)
//	ostree/0/1/0:         D                (a deployment ref)
//	origin:os/stable:     R                (remote ref; partial: a file missing)
//	(org.example, os):    M                (mirror ref)
//	no ref:               O                (orphan, with a stale commitpartial marker)
//
// Every commit has a file of its own, and they all share common.txt.
type pruneFixture struct {
	r                    *Repo
	c1, c2, c3, d, rr, m testCommit
	o                    testCommit
	rMissing             ostree.ObjectName
}

func newPruneFixture(t *testing.T, mode Mode) *pruneFixture {
	t.Helper()
	r, err := Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	r.SetFsync(false)
	fx := &pruneFixture{r: r}
	tree := func(own string) map[string]string {
		return map[string]string{"common.txt": "shared by all\n", "own/" + own: "only in " + own + "\n", "etc/os-release": "ID=" + own + "\n"}
	}
	meta, err := ostree.Metadata{{Key: "k", Value: gvariant.NewVariant("s", "v")}}.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	fx.c1 = mustWriteTestTree(t, r, "main", ostree.Checksum{}, meta, tree("c1"))
	fx.c2 = mustWriteTestTree(t, r, "main", fx.c1.Commit, nil, tree("c2"))
	fx.c3 = mustWriteTestTree(t, r, "main", fx.c2.Commit, nil, tree("c3"))
	fx.d = mustWriteTestTree(t, r, "ostree/0/1/0", ostree.Checksum{}, nil, tree("d"))
	fx.m = mustWriteTestTree(t, r, "", ostree.Checksum{}, nil, tree("m"))
	fx.rr = mustWriteTestTree(t, r, "", ostree.Checksum{}, nil, tree("r"))
	fx.o = mustWriteTestTree(t, r, "", ostree.Checksum{}, nil, tree("o"))
	if err := r.SetRef("origin", "os/stable", fx.rr.Commit); err != nil {
		t.Fatal(err)
	}
	mirror := filepath.Join(r.Path(), "refs", "mirrors", "org.example", "os")
	if err := os.MkdirAll(filepath.Dir(mirror), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(mirror, []byte(fx.m.Commit.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	fx.rMissing = fx.rr.Objects["own/r"]
	if err := os.Remove(r.ObjectPath(fx.rMissing)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []ostree.Checksum{fx.rr.Commit, fx.o.Commit} {
		if err := os.WriteFile(fx.marker(c), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return fx
}

func (fx *pruneFixture) marker(c ostree.Checksum) string {
	return filepath.Join(fx.r.Path(), "state", c.String()+".commitpartial")
}

// objectsOf is everything a commit's tree reaches, the commit included.
func objectsOf(tc testCommit) map[ostree.ObjectName]bool {
	out := map[ostree.ObjectName]bool{{Checksum: tc.Commit, Type: ostree.ObjectCommit}: true}
	for _, n := range tc.Objects {
		out[n] = true
	}
	return out
}

// wantDeleted is what pruning the dropped commits must delete: their
// objects that no kept commit reaches, and their detached metadata.
func (fx *pruneFixture) wantDeleted(dropped, kept []testCommit) []ostree.ObjectName {
	keep := map[ostree.ObjectName]bool{}
	for _, k := range kept {
		for n := range objectsOf(k) {
			keep[n] = true
		}
	}
	set := map[ostree.ObjectName]bool{}
	for _, d := range dropped {
		for n := range objectsOf(d) {
			if !keep[n] {
				set[n] = true
			}
		}
		cm := ostree.ObjectName{Checksum: d.Commit, Type: ostree.ObjectCommitMeta}
		if ok, _ := fx.r.HasObject(cm); ok {
			set[cm] = true
		}
	}
	var out []ostree.ObjectName
	for n := range set {
		if ok, _ := fx.r.HasObject(n); ok {
			out = append(out, n)
		}
	}
	return sortedNames(out)
}

func sortedNames(ns []ostree.ObjectName) []ostree.ObjectName {
	out := append([]ostree.ObjectName(nil), ns...)
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out
}

func TestPruneDepth(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name          string
		depth         int
		dropped, kept func(fx *pruneFixture) []testCommit
	}{
		{name: "all history keeps every ref's ancestors", depth: KeepAllHistory,
			dropped: func(fx *pruneFixture) []testCommit { return []testCommit{fx.o} },
			kept:    func(fx *pruneFixture) []testCommit { return []testCommit{fx.c1, fx.c2, fx.c3, fx.d, fx.rr, fx.m} }},
		{name: "depth 1 keeps one parent", depth: 1,
			dropped: func(fx *pruneFixture) []testCommit { return []testCommit{fx.c1, fx.o} },
			kept:    func(fx *pruneFixture) []testCommit { return []testCommit{fx.c2, fx.c3, fx.d, fx.rr, fx.m} }},
		{name: "depth 0 keeps only the refs' commits", depth: 0,
			dropped: func(fx *pruneFixture) []testCommit { return []testCommit{fx.c1, fx.c2, fx.o} },
			kept:    func(fx *pruneFixture) []testCommit { return []testCommit{fx.c3, fx.d, fx.rr, fx.m} }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fx := newPruneFixture(t, ModeArchive)
			want := fx.wantDeleted(tc.dropped(fx), tc.kept(fx))
			before, err := fx.r.listLoose()
			if err != nil {
				t.Fatal(err)
			}

			dry, err := Prune(context.Background(), fx.r, PruneOptions{Depth: tc.depth, DryRun: true})
			if err != nil {
				t.Fatalf("Prune(dry run) = %v", err)
			}
			if diff := cmp.Diff(want, sortedNames(dry.Deleted)); diff != "" {
				t.Errorf("Prune(dry run).Deleted mismatch (-want +got):\n%s", diff)
			}
			if after, _ := fx.r.listLoose(); len(after) != len(before) {
				t.Fatalf("Prune(dry run) left %d objects of %d, want all", len(after), len(before))
			}
			if _, err := os.Stat(fx.marker(fx.o.Commit)); err != nil {
				t.Errorf("Prune(dry run) removed a commitpartial marker: %v", err)
			}

			st, err := Prune(context.Background(), fx.r, PruneOptions{Depth: tc.depth})
			if err != nil {
				t.Fatalf("Prune() = %v", err)
			}
			if diff := cmp.Diff(want, sortedNames(st.Deleted)); diff != "" {
				t.Errorf("Prune().Deleted mismatch (-want +got):\n%s", diff)
			}
			if st.Bytes != dry.Bytes || st.Bytes == 0 || st.Commits != len(tc.dropped(fx)) || st.Objects != int64(len(before)) || st.Reachable != st.Objects-int64(len(want)) {
				t.Errorf("Prune() = %+v; dry run said %d bytes; want %d commits deleted", st, dry.Bytes, len(tc.dropped(fx)))
			}
			for _, n := range want {
				if ok, _ := fx.r.HasObject(n); ok {
					t.Errorf("after Prune() %s is still stored", n)
				}
			}
			for _, k := range tc.kept(fx) {
				for n := range objectsOf(k) {
					if ok, _ := fx.r.HasObject(n); !ok && n != fx.rMissing {
						t.Errorf("Prune() deleted %s of kept commit %s", n, k.Commit)
					}
				}
			}
			if diff := cmp.Diff([]ostree.Checksum{fx.o.Commit}, st.Markers); diff != "" {
				t.Errorf("Prune().Markers mismatch (-want +got):\n%s", diff)
			}
			if _, err := os.Stat(fx.marker(fx.rr.Commit)); err != nil {
				t.Errorf("Prune() removed the marker of the kept partial commit: %v", err)
			}
			rep := requireFsckClean(t, fx.r)
			if rep.PartialCommits != 1 || rep.Count(FsckPartial) != 1 {
				t.Errorf("Fsck() after Prune() = %d partial commits, %d partial objects; want 1, 1", rep.PartialCommits, rep.Count(FsckPartial))
			}
			again, err := Prune(context.Background(), fx.r, PruneOptions{Depth: tc.depth})
			if err != nil || len(again.Deleted) != 0 {
				t.Errorf("second Prune() = %d deleted, %v; want nothing left to delete", len(again.Deleted), err)
			}
		})
	}
}

func TestPruneRefusesUnknownRoots(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(t *testing.T, fx *pruneFixture)
	}{
		{name: "ref holding garbage", damage: func(t *testing.T, fx *pruneFixture) {
			if err := os.WriteFile(filepath.Join(fx.r.Path(), "refs", "heads", "junk"), []byte("zzz\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "corrupt dirtree of a kept commit", damage: func(t *testing.T, fx *pruneFixture) {
			if err := os.WriteFile(fx.r.ObjectPath(fx.c3.Objects["own"]), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "corrupt commit in kept history", damage: func(t *testing.T, fx *pruneFixture) {
			if err := os.WriteFile(fx.r.ObjectPath(ostree.ObjectName{Checksum: fx.c2.Commit, Type: ostree.ObjectCommit}), []byte("garbage"), 0o644); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			fx := newPruneFixture(t, ModeArchive)
			tc.damage(t, fx)
			before, _ := fx.r.listLoose()
			st, err := Prune(context.Background(), fx.r, PruneOptions{Depth: KeepAllHistory})
			if err == nil {
				t.Fatalf("Prune() = %+v, nil; want an error", st)
			}
			if after, _ := fx.r.listLoose(); len(after) != len(before) || len(st.Deleted) != 0 {
				t.Errorf("failed Prune() deleted %d objects (%d left of %d), want none", len(st.Deleted), len(after), len(before))
			}
		})
	}
}

func TestPruneStaleTmp(t *testing.T) {
	t.Parallel()
	fx := newPruneFixture(t, ModeBareUser)
	tmp := filepath.Join(fx.r.Path(), "tmp")
	this := "staging-" + bootID() + "-"
	old := time.Now().Add(-48 * time.Hour)
	mk := func(name string, dir, aged bool) {
		p := filepath.Join(tmp, name)
		var err error
		if dir {
			err = os.MkdirAll(filepath.Join(p, "ab"), 0o755)
			if err == nil {
				err = os.WriteFile(filepath.Join(p, "ab", "cdef.file"), []byte("x"), 0o644)
			}
		} else {
			err = os.WriteFile(p, []byte("x"), 0o644)
		}
		if err == nil && aged {
			err = os.Chtimes(p, old, old)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mk("staging-otherboot-aaaaaa", true, false)
	mk("staging-otherboot-locked", true, false)
	mk(this+"young", true, false)
	mk(this+"old", true, true)
	mk("old-leftover", false, true)
	mk("fresh-leftover", false, false)
	if err := os.Chtimes(filepath.Join(tmp, "cache"), old, old); err != nil {
		t.Fatal(err)
	}
	fd, ok := tryLockDir(filepath.Join(tmp, "staging-otherboot-locked"))
	if !ok {
		t.Fatal("cannot lock the staging directory")
	}
	defer unix.Close(fd)

	st, err := Prune(context.Background(), fx.r, PruneOptions{Depth: KeepAllHistory})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(st.Tmp)
	want := []string{"old-leftover", "staging-otherboot-aaaaaa", this + "old"}
	sort.Strings(want)
	if diff := cmp.Diff(want, st.Tmp); diff != "" {
		t.Errorf("Prune().Tmp mismatch (-want +got):\n%s", diff)
	}
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	for _, e := range ents {
		left = append(left, e.Name())
	}
	wantLeft := []string{"cache", "fresh-leftover", "staging-otherboot-locked", this + "young"}
	sort.Strings(wantLeft)
	if diff := cmp.Diff(wantLeft, left); diff != "" {
		t.Errorf("tmp/ after Prune() mismatch (-want +got):\n%s", diff)
	}
}

// TestPruneWaitsForTransaction: a transaction that reuses an unreachable
// stored object (deduplication) holds the repository lock until it
// commits, so a prune started meanwhile cannot delete that object under
// it.
func TestPruneWaitsForTransaction(t *testing.T) {
	t.Parallel()
	fx := newPruneFixture(t, ModeArchive)
	reused := fx.o.Objects["own/o"] // only the orphan commit reaches it
	txn, err := fx.r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	root := newTestTreeNode()
	c, err := txn.WriteContent(testFileInfo(0o644, ""), strings.NewReader("only in o\n"), int64(len("only in o\n")), nil)
	if err != nil || c != reused.Checksum {
		t.Fatalf("WriteContent() = %s, %v; want the stored object %s", c, err, reused)
	}
	root.files["reused"] = c
	done := make(chan error, 1)
	started := make(chan struct{})
	go func() {
		close(started)
		_, err := Prune(context.Background(), fx.r, PruneOptions{Depth: 0})
		done <- err
	}()
	<-started
	commit, err := finishTestCommit(txn, root, "new", ostree.Checksum{}, 1, nil, map[string]ostree.ObjectName{})
	if err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Prune() = %v", err)
	}
	if ok, _ := fx.r.HasObject(reused); !ok {
		t.Fatalf("Prune() deleted %s, which commit %s of the concurrent transaction uses", reused, commit)
	}
	requireFsckClean(t, fx.r)
}

// A ref write killed before its rename leaves .NAME.tmp-* under refs/;
// Prune removes it and keeps the refs.
func TestPruneRemovesRefTemps(t *testing.T) {
	t.Parallel()
	fx := newPruneFixture(t, ModeBareUser)
	dir := filepath.Join(fx.r.Path(), "refs", "heads", "ostree", "0", "1")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(dir, ".0.tmp-123456")
	if err := os.WriteFile(temp, []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	refsBefore, err := fx.r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	st, err := Prune(t.Context(), fx.r, PruneOptions{})
	if err != nil {
		t.Fatalf("Prune() = %v", err)
	}
	if want := []string{"refs/heads/ostree/0/1/.0.tmp-123456"}; !slices.Equal(st.RefTemps, want) {
		t.Errorf("Prune().RefTemps = %q, want %q", st.RefTemps, want)
	}
	if _, err := os.Lstat(temp); !os.IsNotExist(err) {
		t.Errorf("ref temp after Prune: Lstat error = %v, want not exist", err)
	}
	refsAfter, err := fx.r.ListRefs()
	if err != nil || len(refsAfter) != len(refsBefore) {
		t.Errorf("ListRefs after Prune = %v, %v; want the %d refs of before", refsAfter, err, len(refsBefore))
	}
}
