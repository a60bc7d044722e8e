package ostree

import (
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
)

// FuzzParseSummary feeds hostile summaries to the parser a pull reads the
// remote's ref list with. It must not panic; what it accepts has sorted
// refs that Lookup finds, and survives Marshal and ParseSummary again
// unchanged. The seeds carry an ostree.static-deltas list (name to
// superblock checksum), which the parser must carry through as metadata:
// pull does not read deltas, so no other code interprets it.
func FuzzParseSummary(f *testing.F) {
	commit := &Commit{Timestamp: 1700000000, Subject: "s"}
	commit.Metadata.Set(MetaVersion, gvariant.NewVariant("s", "1.0"))
	cb, err := commit.Marshal()
	if err != nil {
		f.Fatal(err)
	}
	deltas := []gvariant.DictEntry{
		{Key: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", Value: gvariant.NewVariant("ay", make([]byte, 32))},
		{Key: "aa-bb", Value: gvariant.NewVariant("ay", []byte{1, 2, 3})},
	}
	for _, s := range []*Summary{
		{},
		{Refs: []SummaryRef{NewSummaryRef("os/stable", cb, commit), NewSummaryRef("os/testing", cb, commit)}},
		{Refs: []SummaryRef{NewSummaryRef("a", cb, commit)}, Metadata: Metadata{
			{Key: SummaryStaticDeltas, Value: gvariant.NewVariant("a{sv}", deltas)},
			{Key: SummaryMode, Value: gvariant.NewVariant("s", "archive-z2")},
			{Key: SummaryLastModified, Value: BETimestamp(1700000000)},
		}},
	} {
		b, err := s.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseSummary(b)
		if err != nil {
			return
		}
		for i, r := range s.Refs {
			if i > 0 && s.Refs[i-1].Name > r.Name {
				t.Fatalf("ParseSummary accepted unsorted refs %q, %q", s.Refs[i-1].Name, r.Name)
			}
			got, ok := s.Lookup(r.Name)
			if !ok || got.Name != r.Name {
				t.Fatalf("Lookup(%q) = %+v, %v; want the ref", r.Name, got, ok)
			}
			_ = r.Timestamp()
		}
		if v, ok := s.Metadata.Get(SummaryStaticDeltas); ok {
			_ = v.Type.String()
		}
		again, err := s.Marshal()
		if err != nil {
			return // e.g. an empty metadata key: valid GVariant, not writable by Marshal
		}
		s2, err := ParseSummary(again)
		if err != nil {
			t.Fatalf("ParseSummary(Marshal(ParseSummary(b))) = %v", err)
		}
		if len(s2.Refs) != len(s.Refs) {
			t.Fatalf("%d refs after a round trip, want %d", len(s2.Refs), len(s.Refs))
		}
		for i := range s.Refs {
			if s.Refs[i].Name != s2.Refs[i].Name || s.Refs[i].Checksum != s2.Refs[i].Checksum || s.Refs[i].CommitSize != s2.Refs[i].CommitSize {
				t.Fatalf("ref %d after a round trip = %+v, want %+v", i, s2.Refs[i], s.Refs[i])
			}
		}
	})
}
