package ostree

import (
	"fmt"
	"sort"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

var summaryType = gvariant.MustType("(a(s(taya{sv}))a{sv})")

// Summary keys (docs/formats/summary.md).
const (
	SummaryCommitTimestamp = "ostree.commit.timestamp"
	SummaryCommitVersion   = "ostree.commit.version"
	SummaryMode            = "ostree.summary.mode"
	SummaryLastModified    = "ostree.summary.last-modified"
	SummaryTombstones      = "ostree.summary.tombstone-commits"
	SummaryIndexedDeltas   = "ostree.summary.indexed-deltas"
	SummaryStaticDeltas    = "ostree.static-deltas"
)

// SummaryRef is one ref of a summary.
type SummaryRef struct {
	Name       string
	CommitSize uint64 // size of the commit object in bytes
	Checksum   Checksum
	Metadata   Metadata // ostree.commit.timestamp (BE t), ostree.commit.version
}

// Timestamp returns the ref's commit timestamp from its metadata, or 0.
func (r SummaryRef) Timestamp() uint64 {
	if v, ok := r.Metadata.Get(SummaryCommitTimestamp); ok {
		if t, ok := v.Value.(uint64); ok {
			return be64(t)
		}
	}
	return 0
}

// Summary is a repository's summary file: its refs and extra metadata.
type Summary struct {
	Refs     []SummaryRef // sorted by name
	Metadata Metadata
}

// Lookup returns the summary entry of ref.
func (s *Summary) Lookup(ref string) (SummaryRef, bool) {
	i := sort.Search(len(s.Refs), func(i int) bool { return s.Refs[i].Name >= ref })
	if i < len(s.Refs) && s.Refs[i].Name == ref {
		return s.Refs[i], true
	}
	return SummaryRef{}, false
}

// NewSummaryRef builds a summary entry for a commit as libostree does:
// version (if any) then the big-endian timestamp.
func NewSummaryRef(name string, commit []byte, c *Commit) SummaryRef {
	var m Metadata
	if v := c.Version(); v != "" {
		m = append(m, gvariant.DictEntry{Key: SummaryCommitVersion, Value: gvariant.NewVariant("s", v)})
	}
	m = append(m, gvariant.DictEntry{Key: SummaryCommitTimestamp, Value: gvariant.NewVariant("t", be64(c.Timestamp))})
	return SummaryRef{Name: name, CommitSize: uint64(len(commit)), Checksum: MetadataChecksum(commit), Metadata: m}
}

// BETimestamp wraps a timestamp as a big-endian `t` variant, the form of
// ostree.summary.last-modified and ostree.commit.timestamp.
func BETimestamp(t uint64) gvariant.Variant { return gvariant.NewVariant("t", be64(t)) }

// Marshal serializes the summary; refs are sorted by name first.
func (s *Summary) Marshal() ([]byte, error) {
	refs := append([]SummaryRef(nil), s.Refs...)
	sort.Slice(refs, func(i, j int) bool { return refs[i].Name < refs[j].Name })
	arr := make([]any, len(refs))
	for i, r := range refs {
		meta := []gvariant.DictEntry(r.Metadata)
		if meta == nil {
			meta = []gvariant.DictEntry{}
		}
		arr[i] = gvariant.Tuple{r.Name, gvariant.Tuple{r.CommitSize, r.Checksum[:], meta}}
	}
	meta := []gvariant.DictEntry(s.Metadata)
	if meta == nil {
		meta = []gvariant.DictEntry{}
	}
	return gvariant.Marshal(summaryType, gvariant.Tuple{arr, meta})
}

// ParseSummary decodes a summary file.
func ParseSummary(b []byte) (*Summary, error) {
	v, err := gvariant.Unmarshal(summaryType, b)
	if err != nil {
		return nil, fmt.Errorf("summary: %w: %w", errdefs.ErrCorrupt, err)
	}
	tu := v.(gvariant.Tuple)
	s := &Summary{Metadata: Metadata(tu[1].([]gvariant.DictEntry))}
	for _, e := range tu[0].([]any) {
		et := e.(gvariant.Tuple)
		inner := et[1].(gvariant.Tuple)
		c, err := ChecksumFromBytes(inner[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("summary ref %q: %w", et[0], errdefs.ErrCorrupt)
		}
		s.Refs = append(s.Refs, SummaryRef{
			Name: et[0].(string), CommitSize: inner[0].(uint64), Checksum: c,
			Metadata: Metadata(inner[2].([]gvariant.DictEntry)),
		})
	}
	if !sort.SliceIsSorted(s.Refs, func(i, j int) bool { return s.Refs[i].Name < s.Refs[j].Name }) {
		return nil, fmt.Errorf("summary refs are not sorted: %w", errdefs.ErrCorrupt)
	}
	return s, nil
}
