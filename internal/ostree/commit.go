package ostree

import (
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

var (
	commitType   = gvariant.MustType("(a{sv}aya(say)sstayay)")
	metadataType = gvariant.MustType("a{sv}")
)

// Well-known commit metadata keys (docs/formats/signatures.md).
const (
	MetaVersion           = "version"
	MetaRefBinding        = "ostree.ref-binding"
	MetaCollectionBinding = "ostree.collection-binding"
	MetaEndOfLife         = "ostree.endoflife"
	MetaSizes             = "ostree.sizes"
)

// Metadata is an a{sv} dictionary in insertion order; order is part of the
// commit checksum (docs/formats/objects.md), so it is a list, not a map.
type Metadata []gvariant.DictEntry

// Get returns the value stored under key.
func (m Metadata) Get(key string) (gvariant.Variant, bool) { return gvariant.Lookup(m, key) }

// String returns the string stored under key, or "".
func (m Metadata) String(key string) string {
	if v, ok := m.Get(key); ok {
		if s, ok := v.Value.(string); ok {
			return s
		}
	}
	return ""
}

// Strings returns the string array stored under key.
func (m Metadata) Strings(key string) []string {
	v, ok := m.Get(key)
	if !ok || v.Type.String() != "as" {
		return nil
	}
	var out []string
	for _, x := range v.Value.([]any) {
		out = append(out, x.(string))
	}
	return out
}

// Set replaces the value of key, or appends it.
func (m *Metadata) Set(key string, v gvariant.Variant) {
	for i := range *m {
		if k, _ := (*m)[i].Key.(string); k == key {
			(*m)[i].Value = v
			return
		}
	}
	*m = append(*m, gvariant.DictEntry{Key: key, Value: v})
}

// Marshal serializes m as a{sv}.
func (m Metadata) Marshal() ([]byte, error) {
	for _, e := range m {
		if k, _ := e.Key.(string); k == "" {
			return nil, fmt.Errorf("metadata key is empty: %w", errdefs.ErrInvalid)
		}
	}
	return gvariant.Marshal(metadataType, []gvariant.DictEntry(m))
}

// ParseMetadata decodes an a{sv} such as detached metadata.
func ParseMetadata(b []byte) (Metadata, error) {
	v, err := gvariant.Unmarshal(metadataType, b)
	if err != nil {
		return nil, err
	}
	return Metadata(v.([]gvariant.DictEntry)), nil
}

// Related is an entry of a commit's related-objects list (always empty in
// libostree-written commits).
type Related struct {
	Name     string
	Checksum Checksum
}

// Commit is a commit object (docs/formats/objects.md).
type Commit struct {
	Metadata  Metadata
	Parent    Checksum // zero: no parent
	Related   []Related
	Subject   string
	Body      string
	Timestamp uint64 // seconds since the epoch, UTC
	RootTree  Checksum
	RootMeta  Checksum
}

// Time returns the commit timestamp.
func (c *Commit) Time() time.Time { return time.Unix(int64(c.Timestamp), 0).UTC() }

// Version returns the "version" metadata string.
func (c *Commit) Version() string { return c.Metadata.String(MetaVersion) }

// ContentChecksum is sha256(root dirtree || root dirmeta), libostree's
// "ContentChecksum" (docs/formats/objects.md).
func (c *Commit) ContentChecksum() Checksum {
	h := sha256.New()
	h.Write(c.RootTree[:])
	h.Write(c.RootMeta[:])
	var out Checksum
	h.Sum(out[:0])
	return out
}

// Marshal serializes the commit; sha256 of the result is its checksum.
func (c *Commit) Marshal() ([]byte, error) {
	for _, e := range c.Metadata {
		if k, _ := e.Key.(string); k == "" {
			return nil, fmt.Errorf("commit metadata key is empty: %w", errdefs.ErrInvalid)
		}
	}
	var parent []byte
	if !c.Parent.IsZero() {
		parent = c.Parent[:]
	}
	related := make([]any, len(c.Related))
	for i, r := range c.Related {
		related[i] = gvariant.Tuple{r.Name, r.Checksum[:]}
	}
	meta := []gvariant.DictEntry(c.Metadata)
	if meta == nil {
		meta = []gvariant.DictEntry{}
	}
	return gvariant.Marshal(commitType, gvariant.Tuple{
		meta, parent, related, c.Subject, c.Body, be64(c.Timestamp), c.RootTree[:], c.RootMeta[:],
	})
}

// ParseCommit decodes and structurally validates a commit object
// (ostree_validate_structureof_commit).
func ParseCommit(b []byte) (*Commit, error) {
	v, err := gvariant.Unmarshal(commitType, b)
	if err != nil {
		return nil, fmt.Errorf("commit: %w: %w", errdefs.ErrCorrupt, err)
	}
	tu := v.(gvariant.Tuple)
	c := &Commit{
		Metadata:  Metadata(tu[0].([]gvariant.DictEntry)),
		Subject:   tu[3].(string),
		Body:      tu[4].(string),
		Timestamp: be64(tu[5].(uint64)),
	}
	for _, e := range c.Metadata {
		if e.Key.(string) == "" {
			return nil, fmt.Errorf("commit: empty metadata key: %w", errdefs.ErrCorrupt)
		}
	}
	if p := tu[1].([]byte); len(p) != 0 {
		if c.Parent, err = ChecksumFromBytes(p); err != nil {
			return nil, fmt.Errorf("commit parent: %w", errdefs.ErrCorrupt)
		}
	}
	for _, r := range tu[2].([]any) {
		rt := r.(gvariant.Tuple)
		cs, err := ChecksumFromBytes(rt[1].([]byte))
		if err != nil {
			return nil, fmt.Errorf("commit related object: %w", errdefs.ErrCorrupt)
		}
		c.Related = append(c.Related, Related{Name: rt[0].(string), Checksum: cs})
	}
	if c.RootTree, err = ChecksumFromBytes(tu[6].([]byte)); err != nil {
		return nil, fmt.Errorf("commit root dirtree: %w", errdefs.ErrCorrupt)
	}
	if c.RootMeta, err = ChecksumFromBytes(tu[7].([]byte)); err != nil {
		return nil, fmt.Errorf("commit root dirmeta: %w", errdefs.ErrCorrupt)
	}
	return c, nil
}
