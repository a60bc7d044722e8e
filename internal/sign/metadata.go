package sign

import (
	"fmt"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
)

// Metadata keys under which the signature engines store their signatures, each an aay with
// one signature per element (docs/formats/signatures.md).
const (
	MetadataKeyEd25519 = "ostree.sign.ed25519"
	MetadataKeyGPG     = "ostree.gpgsigs"
)

var (
	metadataType   = gvariant.MustType("a{sv}")
	signaturesType = gvariant.MustType("aay")
)

// Metadata is detached metadata: the a{sv} of a .commitmeta object or of summary.sig, with its
// entries in their stored order. Values are immutable: AddSignature returns a new Metadata.
type Metadata []gvariant.DictEntry

// ParseMetadata decodes detached metadata. Empty input is an empty dictionary, which is also
// how a missing .commitmeta reads. Malformed framing and duplicate keys wrap errdefs.ErrInvalid:
// ostree never writes a key twice (it builds the dictionary with GVariantDict), and a
// duplicate is ambiguous, since GLib's lookup takes the first entry and GVariantDict the last.
func ParseMetadata(b []byte) (Metadata, error) {
	v, err := gvariant.Unmarshal(metadataType, b)
	if err != nil {
		return nil, fmt.Errorf("decoding detached metadata: %w", err)
	}
	m := Metadata(v.([]gvariant.DictEntry))
	seen := make(map[string]bool, len(m))
	for _, e := range m {
		k := e.Key.(string) // the decoder yields a string for an "s" key
		if seen[k] {
			return nil, fmt.Errorf("decoding detached metadata: key %q appears twice: %w", k, errdefs.ErrInvalid)
		}
		seen[k] = true
	}
	return m, nil
}

// Marshal encodes the metadata in GVariant normal form.
func (m Metadata) Marshal() ([]byte, error) {
	return gvariant.Marshal(metadataType, []gvariant.DictEntry(m))
}

// Lookup returns the value stored under key.
func (m Metadata) Lookup(key string) (gvariant.Variant, bool) { return gvariant.Lookup(m, key) }

// Signatures returns the signatures stored under an engine's key, nil when the key is absent.
// A value of another type than aay wraps errdefs.ErrInvalid.
func (m Metadata) Signatures(key string) ([][]byte, error) {
	v, ok := m.Lookup(key)
	if !ok {
		return nil, nil
	}
	return signatureList(key, v)
}

func signatureList(key string, v gvariant.Variant) ([][]byte, error) {
	if v.Type == nil || v.Type.String() != signaturesType.String() {
		return nil, fmt.Errorf("detached metadata key %q has type %q, want %q: %w", key, typeName(v.Type), signaturesType, errdefs.ErrInvalid)
	}
	var out [][]byte
	switch xs := v.Value.(type) {
	case []any: // as decoded
		out = make([][]byte, len(xs))
		for i, x := range xs {
			b, ok := x.([]byte)
			if !ok {
				return nil, fmt.Errorf("internal error: element %d of %q is a %T", i, key, x)
			}
			out[i] = b
		}
	case [][]byte: // as built by AddSignature
		out = xs
	default:
		return nil, fmt.Errorf("internal error: value of %q is a %T", key, v.Value)
	}
	return out, nil
}

func typeName(t *gvariant.Type) string {
	if t == nil {
		return ""
	}
	return t.String()
}

// AddSignature returns a copy of m with sig appended to the aay under key, which is created
// at the end when absent. Other entries keep their values and their order.
func (m Metadata) AddSignature(key string, sig []byte) (Metadata, error) {
	out := make(Metadata, len(m), len(m)+1)
	copy(out, m)
	for i, e := range out {
		if k, _ := e.Key.(string); k != key {
			continue
		}
		v, _ := e.Value.(gvariant.Variant)
		old, err := signatureList(key, v)
		if err != nil {
			return nil, err
		}
		sigs := make([][]byte, 0, len(old)+1)
		sigs = append(append(sigs, old...), sig)
		out[i] = gvariant.DictEntry{Key: key, Value: gvariant.Variant{Type: signaturesType, Value: sigs}}
		return out, nil
	}
	return append(out, gvariant.DictEntry{Key: key, Value: gvariant.Variant{Type: signaturesType, Value: [][]byte{sig}}}), nil
}

// AddSignature appends sig under engineKey (MetadataKeyEd25519, MetadataKeyGPG, ...) to the
// encoded detached metadata meta, which may be empty, and returns the new encoding.
//
// When meta is empty or holds only engineKey, the result is byte-for-byte what ostree writes.
// With several keys ostree rebuilds the dictionary through GVariantDict, whose order is a hash
// order (docs/formats/signatures.md); here the order is kept and a new key goes last. Both are
// the same dictionary to every reader.
func AddSignature(meta []byte, engineKey string, sig []byte) ([]byte, error) {
	m, err := ParseMetadata(meta)
	if err != nil {
		return nil, err
	}
	m, err = m.AddSignature(engineKey, sig)
	if err != nil {
		return nil, err
	}
	return m.Marshal()
}
