package repo

import (
	"errors"
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/strata-os/strata/internal/ostree"
)

// ck names a test checksum by a short label.
func ck(label string) ostree.Checksum { return ostree.MetadataChecksum([]byte(label)) }

func TestKeepCommits(t *testing.T) {
	t.Parallel()
	// History: a3 -> a2 -> a1 -> a0 (root); b1 -> a1; c1 -> gone (parent
	// not stored); x is corrupt.
	parents := map[string]string{"a3": "a2", "a2": "a1", "a1": "a0", "a0": "", "b1": "a1", "c1": "gone", "bad": "x"}
	labels := map[ostree.Checksum]string{}
	for l := range parents {
		labels[ck(l)] = l
	}
	labels[ck("x")] = "x"
	errCorrupt := errors.New("corrupt commit")
	parent := func(c ostree.Checksum) (ostree.Checksum, bool, error) {
		l := labels[c]
		if l == "x" {
			return ostree.Checksum{}, false, errCorrupt
		}
		p, ok := parents[l]
		if !ok {
			return ostree.Checksum{}, false, nil
		}
		if p == "" {
			return ostree.Checksum{}, true, nil
		}
		return ck(p), true, nil
	}
	tests := []struct {
		name    string
		heads   []string
		depth   int
		want    []string
		wantErr error
	}{
		{name: "depth 0 keeps the head", heads: []string{"a3"}, depth: 0, want: []string{"a3"}},
		{name: "depth 1", heads: []string{"a3"}, depth: 1, want: []string{"a2", "a3"}},
		{name: "all history", heads: []string{"a3"}, depth: -1, want: []string{"a0", "a1", "a2", "a3"}},
		{name: "depth beyond the root", heads: []string{"a3"}, depth: 10, want: []string{"a0", "a1", "a2", "a3"}},
		{name: "two heads, depth from the nearer one", heads: []string{"a3", "b1"}, depth: 1, want: []string{"a1", "a2", "a3", "b1"}},
		{name: "shorter walk first does not cut the longer", heads: []string{"b1", "a2"}, depth: 2, want: []string{"a0", "a1", "a2", "b1"}},
		{name: "nearer head reaches past the farther one's depth", heads: []string{"a3", "b1"}, depth: 2, want: []string{"a0", "a1", "a2", "a3", "b1"}},
		{name: "same head twice", heads: []string{"a2", "a2"}, depth: 0, want: []string{"a2"}},
		{name: "missing parent ends history", heads: []string{"c1"}, depth: -1, want: []string{"c1"}},
		{name: "missing head keeps nothing", heads: []string{"gone"}, depth: -1, want: nil},
		{name: "corrupt commit stops", heads: []string{"bad"}, depth: -1, wantErr: errCorrupt},
		{name: "no refs", heads: nil, depth: -1, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var heads []ostree.Checksum
			for _, h := range tc.heads {
				heads = append(heads, ck(h))
			}
			kept, err := keepCommits(heads, tc.depth, parent)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("keepCommits(%v, %d) error = %v, want %v", tc.heads, tc.depth, err, tc.wantErr)
			}
			var got []string
			for c := range kept {
				got = append(got, labels[c])
			}
			sort.Strings(got)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("keepCommits(%v, %d) mismatch (-want +got):\n%s", tc.heads, tc.depth, diff)
			}
		})
	}
}

func TestMark(t *testing.T) {
	t.Parallel()
	n := func(l string, typ ostree.ObjectType) ostree.ObjectName {
		return ostree.ObjectName{Checksum: ck(l), Type: typ}
	}
	commit := func(l string) ostree.ObjectName { return n(l, ostree.ObjectCommit) }
	tree := func(l string) ostree.ObjectName { return n(l, ostree.ObjectDirTree) }
	file := func(l string) ostree.ObjectName { return n(l, ostree.ObjectFile) }
	errBroken := errors.New("unreadable dirtree")
	graph := map[ostree.ObjectName][]ostree.ObjectName{
		commit("c1"):   {tree("root1")},
		commit("c2"):   {tree("root2")},
		tree("root1"):  {file("f1"), tree("shared")},
		tree("root2"):  {file("f2"), tree("shared")},
		tree("shared"): {file("s"), tree("root1")}, // a cycle must not loop
	}
	refs := func(o ostree.ObjectName) ([]ostree.ObjectName, error) {
		if o == tree("broken") {
			return nil, errBroken
		}
		return graph[o], nil
	}
	tests := []struct {
		name    string
		roots   []ostree.ObjectName
		want    []ostree.ObjectName
		wantErr error
	}{
		{name: "one commit", roots: []ostree.ObjectName{commit("c1")},
			want: []ostree.ObjectName{commit("c1"), tree("root1"), file("f1"), tree("shared"), file("s")}},
		{name: "shared subtree once", roots: []ostree.ObjectName{commit("c1"), commit("c2")},
			want: []ostree.ObjectName{commit("c1"), commit("c2"), tree("root1"), tree("root2"), file("f1"), file("f2"), tree("shared"), file("s")}},
		{name: "no roots", roots: nil, want: nil},
		{name: "unknown object is its own leaf", roots: []ostree.ObjectName{file("lonely")}, want: []ostree.ObjectName{file("lonely")}},
		{name: "error stops the mark", roots: []ostree.ObjectName{tree("broken")}, wantErr: errBroken},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := mark(tc.roots, refs)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("mark() error = %v, want %v", err, tc.wantErr)
			}
			want := map[ostree.ObjectName]struct{}{}
			for _, o := range tc.want {
				want[o] = struct{}{}
			}
			if tc.wantErr == nil && !cmp.Equal(want, got) {
				t.Errorf("mark(%v) = %d objects, want %d: %v", tc.roots, len(got), len(want), got)
			}
		})
	}
}

func TestSweepOrder(t *testing.T) {
	t.Parallel()
	n := func(l string, typ ostree.ObjectType) ostree.ObjectName {
		return ostree.ObjectName{Checksum: ck(l), Type: typ}
	}
	stored := []ostree.ObjectName{
		n("f", ostree.ObjectFile), n("t", ostree.ObjectDirTree), n("kept", ostree.ObjectFile),
		n("m", ostree.ObjectDirMeta), n("c", ostree.ObjectCommit), n("c", ostree.ObjectCommitMeta),
		n("c", ostree.ObjectTombstoneCommit), n("p", ostree.ObjectPayloadLink), n("c0", ostree.ObjectCommit),
	}
	marked := map[ostree.ObjectName]struct{}{n("kept", ostree.ObjectFile): {}}
	want := []ostree.ObjectName{
		n("c", ostree.ObjectCommit), n("c0", ostree.ObjectCommit), n("c", ostree.ObjectCommitMeta),
		n("t", ostree.ObjectDirTree), n("m", ostree.ObjectDirMeta), n("f", ostree.ObjectFile),
	}
	if diff := cmp.Diff(want, sweepOrder(stored, marked)); diff != "" {
		t.Errorf("sweepOrder() mismatch (-want +got):\n%s", diff)
	}
}
