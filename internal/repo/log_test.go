package repo

import (
	"context"
	"errors"
	"os"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

func TestLog(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		rev           string
		deleteParent  bool
		wantCommits   []string
		wantSubjects  []string
		wantTruncated bool
	}{
		{"full history", "test/ref", false, []string{coVectorC2, coVectorC1}, []string{"Second", "Test subject"}, false},
		{"from the parent", "test/ref^", false, []string{coVectorC1}, []string{"Test subject"}, false},
		{"parent not stored", "test/ref", true, []string{coVectorC2}, []string{"Second"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := coVectorRepo(t, "repo-archive")
			if tc.deleteParent {
				coMust(t, os.Remove(r.ObjectPath(ostree.ObjectName{Checksum: coChecksum(t, coVectorC1), Type: ostree.ObjectCommit})))
			}
			h, err := Log(context.Background(), r, tc.rev)
			if err != nil {
				t.Fatalf("Log(%s) = %v", tc.rev, err)
			}
			var sums, subjects []string
			for _, e := range h.Commits {
				sums = append(sums, e.Checksum.String())
				subjects = append(subjects, e.Commit.Subject)
			}
			if !coEqualStrings(sums, tc.wantCommits) || !coEqualStrings(subjects, tc.wantSubjects) || h.Truncated != tc.wantTruncated {
				t.Errorf("Log(%s) = %v %v truncated=%v, want %v %v truncated=%v", tc.rev, sums, subjects, h.Truncated, tc.wantCommits, tc.wantSubjects, tc.wantTruncated)
			}
		})
	}
}

func coEqualStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestLogErrors(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-archive")
	if _, err := Log(context.Background(), r, "no/such/ref"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Log(no/such/ref) = %v, want ErrNotFound", err)
	}
	// The commit a ref names must be there; only missing ancestors are fine.
	coMust(t, os.Remove(r.ObjectPath(ostree.ObjectName{Checksum: coChecksum(t, coVectorC2), Type: ostree.ObjectCommit})))
	if _, err := Log(context.Background(), r, "test/ref"); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("Log(test/ref without its commit) = %v, want ErrNotFound", err)
	}
}

func TestShow(t *testing.T) {
	t.Parallel()
	r := coVectorRepo(t, "repo-archive")
	for _, tc := range []struct {
		rev             string
		wantChecksum    string
		wantContent     string
		wantVersion     string
		wantDetached    []string
		wantParentSaved bool
	}{
		{"test/ref^", coVectorC1, "8733dd1e29d47b75963f6b811f16cbbddaae722dfd8655c80121a2461c575794", "1.0", []string{"ostree.sign.dummy"}, false},
		{"test/ref", coVectorC2, "5ea755c824217d5b534b5a796780d5ab2053b3c87fe8984730c149b2031f02ba", "2.0", nil, true},
	} {
		t.Run(tc.rev, func(t *testing.T) {
			t.Parallel()
			d, err := Show(r, tc.rev)
			if err != nil {
				t.Fatalf("Show(%s) = %v", tc.rev, err)
			}
			var keys []string
			for _, e := range d.Detached {
				keys = append(keys, e.Key.(string))
			}
			if d.Checksum.String() != tc.wantChecksum || d.ContentChecksum.String() != tc.wantContent ||
				d.Commit.Version() != tc.wantVersion || !coEqualStrings(keys, tc.wantDetached) || d.ParentStored != tc.wantParentSaved {
				t.Errorf("Show(%s) = %s content %s version %q detached %v parent stored %v, want %s %s %q %v %v", tc.rev,
					d.Checksum, d.ContentChecksum, d.Commit.Version(), keys, d.ParentStored,
					tc.wantChecksum, tc.wantContent, tc.wantVersion, tc.wantDetached, tc.wantParentSaved)
			}
		})
	}
}
