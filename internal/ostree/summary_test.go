package ostree

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// TestSummaryVector decodes the summary ostree 2022.7 wrote for the test
// vectors and re-encodes it byte for byte.
func TestSummaryVector(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile(filepath.Join(testutil.Vectors(t), "repo-archive", "summary"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := ParseSummary(b)
	if err != nil {
		t.Fatal(err)
	}
	ref, ok := s.Lookup("test/ref")
	if !ok {
		t.Fatalf("Lookup(test/ref) not found in %+v", s.Refs)
	}
	if want := "33551e1f5b855ffea3595aed5983953c687ec4e2f96f3d6d00648ffdd647c194"; ref.Checksum.String() != want {
		t.Errorf("ref checksum = %s, want %s", ref.Checksum, want)
	}
	if ref.CommitSize != 292 || ref.Timestamp() != 1672617600 {
		t.Errorf("ref size, timestamp = %d, %d, want 292, 1672617600", ref.CommitSize, ref.Timestamp())
	}
	again, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, b) {
		t.Errorf("Marshal(ParseSummary(summary)) differs from ostree's bytes")
	}
	commit, err := os.ReadFile(filepath.Join(testutil.Vectors(t), "repo-archive", "objects", "33", "551e1f5b855ffea3595aed5983953c687ec4e2f96f3d6d00648ffdd647c194.commit"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := ParseCommit(commit)
	if err != nil {
		t.Fatal(err)
	}
	built := NewSummaryRef("test/ref", commit, c)
	got, _ := (&Summary{Refs: []SummaryRef{built}}).Marshal()
	want, _ := (&Summary{Refs: []SummaryRef{ref}}).Marshal()
	if !bytes.Equal(got, want) {
		t.Errorf("NewSummaryRef entry differs from ostree's entry:\n got %x\nwant %x", got, want)
	}
}
