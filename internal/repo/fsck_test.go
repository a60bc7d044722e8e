package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/sign"
	"github.com/strata-os/strata/internal/testutil"
	"golang.org/x/sys/unix"
)

type countingProgress struct{ total, done atomic.Int64 }

func (p *countingProgress) SetTotal(n int64) { p.total.Store(n) }
func (p *countingProgress) Add(n int64)      { p.done.Add(n) }

func TestFsckCleanRepository(t *testing.T) {
	t.Parallel()
	for _, mode := range []Mode{ModeArchive, ModeBareUser, ModeBareUserOnly} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			fx := newFaultFixture(t, mode)
			var prog countingProgress
			rep, err := Fsck(context.Background(), fx.r, FsckOptions{Progress: &prog, Workers: 3})
			if err != nil {
				t.Fatalf("Fsck() = %v", err)
			}
			// C1 and C2 share everything but a.txt, the root dirtree and
			// the commit; the empty directory's dirtree is the empty one.
			want := map[ostree.ObjectType]int64{
				ostree.ObjectFile:       6, // a.txt twice, link, big.bin, b.txt, c.sh
				ostree.ObjectDirTree:    5, // root twice, sub, sub/deeper, empty
				ostree.ObjectDirMeta:    1,
				ostree.ObjectCommit:     2,
				ostree.ObjectCommitMeta: 1,
			}
			if diff := cmp.Diff(want, rep.ObjectsByType); diff != "" {
				t.Errorf("Fsck().ObjectsByType mismatch (-want +got):\n%s", diff)
			}
			if rep.Objects != 15 || rep.Refs != 1 || rep.Commits != 2 || rep.PartialCommits != 0 || len(rep.Problems) != 0 || !rep.OK() {
				t.Errorf("Fsck() = %+v, want 15 objects, 1 ref, 2 commits, no problems", rep)
			}
			if rep.Bytes == 0 {
				t.Errorf("Fsck().Bytes = 0, want the bytes read")
			}
			if prog.total.Load() != 15 || prog.done.Load() != 15 {
				t.Errorf("progress = %d of %d, want 15 of 15", prog.done.Load(), prog.total.Load())
			}
		})
	}
}

// TestFsckOstreeVectors checks the repositories libostree wrote.
func TestFsckOstreeVectors(t *testing.T) {
	t.Parallel()
	vec := testutil.Vectors(t)
	tests := []struct {
		repo           string
		commits, files int
	}{
		{"repo-archive", 2, 7},
		{"repo-bare-user", 2, 7},
		{"osrepo-archive", 4, 21},
		{"etcrepo-archive", 2, 12},
	}
	for _, tc := range tests {
		t.Run(tc.repo, func(t *testing.T) {
			t.Parallel()
			r, err := Open(filepath.Join(vec, tc.repo))
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			rep := requireFsckClean(t, r)
			if rep.Commits != tc.commits || rep.ObjectsByType[ostree.ObjectFile] != int64(tc.files) {
				t.Errorf("Fsck(%s) = %d commits, %d files, want %d, %d", tc.repo, rep.Commits, rep.ObjectsByType[ostree.ObjectFile], tc.commits, tc.files)
			}
		})
	}
}

func TestFsckPartialCommits(t *testing.T) {
	t.Parallel()
	fx := newFaultFixture(t, ModeArchive)
	markPartial := func(c ostree.Checksum) {
		if err := os.WriteFile(filepath.Join(fx.r.Path(), "state", c.String()+".commitpartial"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// a.txt of C2 belongs to C2 only: with C2 partial its absence is
	// expected. b.txt is shared with C1, which is complete.
	onlyC2, shared := fx.c2.Objects["a.txt"], fx.c2.Objects["sub/b.txt"]
	if err := os.Remove(fx.r.ObjectPath(onlyC2)); err != nil {
		t.Fatal(err)
	}
	markPartial(fx.c2.Commit)
	rep, err := Fsck(context.Background(), fx.r, FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.PartialCommits != 1 || rep.Count(FsckPartial) != 1 || rep.Problems[0].Object != onlyC2 || rep.Problems[0].Commit != fx.c2.Commit {
		t.Fatalf("Fsck() = %+v, want OK with %s partial in commit %s", rep, onlyC2, fx.c2.Commit)
	}
	// A marker that ostree fsck wrote on finding the tree damaged ("f")
	// does not excuse what is missing.
	if err := os.WriteFile(filepath.Join(fx.r.Path(), "state", fx.c2.Commit.String()+".commitpartial"), []byte("f"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = Fsck(context.Background(), fx.r, FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.PartialCommits != 0 || rep.Count(FsckMissing) != 1 || rep.Problems[0].Object != onlyC2 {
		t.Fatalf("Fsck() with an fsck-written marker = %+v, want %s missing", rep.Problems, onlyC2)
	}
	markPartial(fx.c2.Commit)
	if err := os.Remove(fx.r.ObjectPath(shared)); err != nil {
		t.Fatal(err)
	}
	rep, err = Fsck(context.Background(), fx.r, FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK() || rep.Count(FsckMissing) != 1 || rep.Count(FsckPartial) != 1 || rep.Problems[0].Object != shared || rep.Problems[0].Commit != fx.c1.Commit {
		t.Fatalf("Fsck() = %+v, want %s missing from complete commit %s", rep.Problems, shared, fx.c1.Commit)
	}
}

func TestFsckVerifyCommit(t *testing.T) {
	t.Parallel()
	fx := newFaultFixture(t, ModeBareUser)
	secret, pub, err := sign.GenerateKey(bytes.NewReader(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	signCommit := func(c ostree.Checksum) {
		b, err := fx.r.ReadMetadata(ostree.ObjectCommit, c)
		if err != nil {
			t.Fatal(err)
		}
		old, err := fx.r.ReadCommitMeta(c)
		if err != nil {
			t.Fatal(err)
		}
		sig, err := sign.NewEd25519Signer(secret).Sign(b)
		if err != nil {
			t.Fatal(err)
		}
		meta, err := sign.AddSignature(old, sign.MetadataKeyEd25519, sig)
		if err != nil {
			t.Fatal(err)
		}
		txn, err := fx.r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.WriteCommitMeta(c, meta); err != nil {
			t.Fatal(err)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	// An orphan commit, reachable from no ref, is not verified.
	orphan := mustWriteTestTree(t, fx.r, "", ostree.Checksum{}, nil, map[string]string{"x": "x"})
	verifier := sign.NewEd25519Verifier([]sign.PublicKey{pub}, nil)
	var called []ostree.Checksum
	verify := func(c ostree.Checksum, b, meta []byte) error {
		called = append(called, c)
		if ostree.MetadataChecksum(b) != c {
			return fmt.Errorf("commit bytes of %s do not hash to it", c)
		}
		_, err := sign.Verify(b, meta, verifier)
		return err
	}
	signCommit(fx.c2.Commit)
	rep, err := Fsck(context.Background(), fx.r, FsckOptions{VerifyCommit: verify})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]ostree.Checksum{fx.c2.Commit, fx.c1.Commit}, called); diff != "" {
		t.Errorf("VerifyCommit calls mismatch (-want +got), orphan %s must not be verified:\n%s", orphan.Commit, diff)
	}
	if rep.OK() || rep.Verified != 1 || rep.Count(FsckSignature) != 1 || rep.Problems[0].Object.Checksum != fx.c1.Commit || rep.Problems[0].Ref != "main" {
		t.Fatalf("Fsck() = %+v, want C1 %s unsigned and C2 verified", rep.Problems, fx.c1.Commit)
	}
	if got := rep.Problems[0].Reason; !strings.Contains(got, sign.ErrNoSignature.Error()) {
		t.Errorf("Fsck() reason for unsigned C1 = %q, want it to say %q", got, sign.ErrNoSignature)
	}
	signCommit(fx.c1.Commit)
	called = nil
	rep, err = Fsck(context.Background(), fx.r, FsckOptions{VerifyCommit: verify})
	if err != nil || !rep.OK() || rep.Verified != 2 {
		t.Fatalf("Fsck() = %+v, %v; want both commits verified", rep, err)
	}
}

func TestFsckIgnoresStrayFiles(t *testing.T) {
	t.Parallel()
	fx := newFaultFixture(t, ModeArchive)
	dir := filepath.Dir(fx.r.ObjectPath(fx.c2.Objects["a.txt"]))
	for _, name := range []string{".tmp-12345", "README", "0123.file", fx.c2.Objects["a.txt"].Checksum.String()[2:] + ".file"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte("junk"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(fx.r.Path(), "objects", "zz"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// A temp file left by an interrupted ref write is not a ref.
	if err := os.WriteFile(filepath.Join(fx.r.Path(), "refs", "heads", ".main.tmp-123"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	rep := requireFsckClean(t, fx.r)
	if rep.Objects != 15 || rep.Refs != 1 {
		t.Errorf("Fsck() = %d objects, %d refs, want 15, 1", rep.Objects, rep.Refs)
	}
}

func TestFsckCancelled(t *testing.T) {
	t.Parallel()
	fx := newFaultFixture(t, ModeArchive)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Fsck(ctx, fx.r, FsckOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("Fsck(cancelled) = %v, want context.Canceled", err)
	}
}

func TestClassifyFsckError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want FsckProblemKind
	}{
		{"absent", fmt.Errorf("x: %w", unix.ENOENT), FsckMissing},
		{"not found class", fmt.Errorf("x: %w", errdefs.ErrNotFound), FsckMissing},
		{"corrupt class", fmt.Errorf("x: %w", errdefs.ErrCorrupt), FsckCorrupt},
		{"invalid class", fmt.Errorf("x: %w", errdefs.ErrInvalid), FsckCorrupt},
		{"read error", &objectReadError{unix.EIO}, FsckUnreadable},
		{"read error wrapped", fmt.Errorf("x: %w", &objectReadError{unix.EACCES}), FsckUnreadable},
		{"other", errors.New("what"), FsckUnreadable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := classifyFsckError(tc.err); got != tc.want {
				t.Errorf("classifyFsckError(%v) = %s, want %s", tc.err, got, tc.want)
			}
		})
	}
}

func TestFsckProblemString(t *testing.T) {
	t.Parallel()
	c := ostree.MetadataChecksum([]byte("c"))
	o := ostree.MetadataChecksum([]byte("o"))
	tests := []struct {
		name string
		p    FsckProblem
		want string
	}{
		{"corrupt", FsckProblem{Kind: FsckCorrupt, Object: ostree.ObjectName{Checksum: o, Type: ostree.ObjectFile}, Reason: "content hashes to x"},
			"corrupt file object " + o.String() + ": content hashes to x"},
		{"missing in a commit", FsckProblem{Kind: FsckMissing, Object: ostree.ObjectName{Checksum: o, Type: ostree.ObjectDirTree}, Commit: c, Path: "/usr"},
			"missing dirtree object " + o.String() + " (in commit " + c.String() + " at /usr)"},
		{"ref", FsckProblem{Kind: FsckCorrupt, Ref: "os/stable", Reason: "does not hold a checksum"},
			"corrupt ref os/stable: does not hold a checksum"},
		{"signature", FsckProblem{Kind: FsckSignature, Object: ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}, Ref: "main", Reason: "untrusted"},
			"unverified commit " + c.String() + " (ref main): untrusted"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := tc.p.String(); got != tc.want {
				t.Errorf("FsckProblem.String() = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFsckReachLooksAgain: an object missing from the listing but stored
// by the time pass 3 needs it (a concurrent transaction) is not reported.
func TestFsckReachLooksAgain(t *testing.T) {
	t.Parallel()
	file := ostree.ObjectName{Checksum: ostree.MetadataChecksum([]byte("f")), Type: ostree.ObjectFile}
	tree := ostree.DirTree{Files: []ostree.TreeFile{{Name: "f", Checksum: file.Checksum}}}
	treeName := ostree.ObjectName{Checksum: ostree.MetadataChecksum(tree.Marshal()), Type: ostree.ObjectDirTree}
	meta := ostree.ObjectName{Checksum: ostree.MetadataChecksum(testDirMeta.Marshal()), Type: ostree.ObjectDirMeta}
	commit := ostree.MetadataChecksum([]byte("commit"))
	tests := []struct {
		name   string
		stored func(ostree.ObjectName) (bool, error)
		want   []FsckProblemKind
	}{
		{"stored since the listing", func(ostree.ObjectName) (bool, error) { return true, nil }, nil},
		{"still absent", func(ostree.ObjectName) (bool, error) { return false, nil }, []FsckProblemKind{FsckMissing}},
		{"cannot tell", func(ostree.ObjectName) (bool, error) { return false, unix.EIO }, []FsckProblemKind{FsckUnreadable}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			g := &fsckGraph{
				present: map[ostree.ObjectName]struct{}{treeName: {}, meta: {}, {Checksum: commit, Type: ostree.ObjectCommit}: {}},
				trees:   map[ostree.Checksum]ostree.DirTree{treeName.Checksum: tree},
				commits: map[ostree.Checksum]*ostree.Commit{commit: {RootTree: treeName.Checksum, RootMeta: meta.Checksum}},
			}
			var got []FsckProblemKind
			for _, p := range g.reach(nil, tc.stored, &FsckReport{}) {
				if p.Object != file || p.Path != "/f" {
					t.Errorf("reach() problem %+v, want one about %s at /f", p, file)
				}
				got = append(got, p.Kind)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("reach() kinds mismatch (-want +got):\n%s", diff)
			}
		})
	}
}
