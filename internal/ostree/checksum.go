package ostree

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// Checksum is a SHA-256 object name: 32 raw bytes inside GVariants, 64
// lowercase hex characters in text.
type Checksum [32]byte

// String returns the 64-character lowercase hex form.
func (c Checksum) String() string { return hex.EncodeToString(c[:]) }

// IsZero reports whether c is all zero, which strata uses for "none" (a
// commit without parent).
func (c Checksum) IsZero() bool { return c == Checksum{} }

// ModifiedBase64 is the form used in static-delta paths: standard base64
// without the trailing '=', with '/' replaced by '_' (docs/formats/objects.md).
func (c Checksum) ModifiedBase64() string {
	s := base64.StdEncoding.EncodeToString(c[:])
	return strings.ReplaceAll(strings.TrimRight(s, "="), "/", "_")
}

// ParseChecksum parses 64 lowercase hex characters.
func ParseChecksum(s string) (Checksum, error) {
	var c Checksum
	if !IsChecksum(s) {
		return c, fmt.Errorf("checksum %q: not 64 lowercase hex characters: %w", s, errdefs.ErrInvalid)
	}
	hex.Decode(c[:], []byte(s))
	return c, nil
}

// IsChecksum reports whether s looks like a full hex checksum.
func IsChecksum(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// ChecksumFromBytes converts a raw 32-byte `ay` into a Checksum.
func ChecksumFromBytes(b []byte) (Checksum, error) {
	var c Checksum
	if len(b) != len(c) {
		return c, fmt.Errorf("raw checksum of %d bytes, want 32: %w", len(b), errdefs.ErrInvalid)
	}
	copy(c[:], b)
	return c, nil
}

// ObjectType is one of OSTree's object types (docs/formats/objects.md).
type ObjectType uint8

// Object types, numbered as libostree numbers them.
const (
	ObjectFile            ObjectType = 1
	ObjectDirTree         ObjectType = 2
	ObjectDirMeta         ObjectType = 3
	ObjectCommit          ObjectType = 4
	ObjectTombstoneCommit ObjectType = 5
	ObjectCommitMeta      ObjectType = 6
	ObjectPayloadLink     ObjectType = 7
)

var objectTypeNames = [...]string{
	ObjectFile:            "file",
	ObjectDirTree:         "dirtree",
	ObjectDirMeta:         "dirmeta",
	ObjectCommit:          "commit",
	ObjectTombstoneCommit: "tombstone-commit",
	ObjectCommitMeta:      "commitmeta",
	ObjectPayloadLink:     "payload-link",
}

// String returns the type's name, which is also its loose-object suffix.
func (t ObjectType) String() string {
	if int(t) < len(objectTypeNames) && objectTypeNames[t] != "" {
		return objectTypeNames[t]
	}
	return fmt.Sprintf("objtype(%d)", uint8(t))
}

// IsMeta reports whether t is a metadata object (dirtree … commitmeta).
func (t ObjectType) IsMeta() bool { return t >= ObjectDirTree && t <= ObjectCommitMeta }

// ParseObjectType parses a type name such as "dirtree".
func ParseObjectType(s string) (ObjectType, error) {
	for i, n := range objectTypeNames {
		if n != "" && n == s {
			return ObjectType(i), nil
		}
	}
	return 0, fmt.Errorf("object type %q: %w", s, errdefs.ErrInvalid)
}

// LoosePath is the object's path under objects/: "XX/REST.type", with a
// trailing "z" for content objects in archive repositories (docs/formats/objects.md).
func LoosePath(c Checksum, t ObjectType, archive bool) string {
	h := c.String()
	p := h[:2] + "/" + h[2:] + "." + t.String()
	if archive && t == ObjectFile {
		p += "z"
	}
	return p
}

// ObjectName identifies an object: its checksum and type.
type ObjectName struct {
	Checksum Checksum
	Type     ObjectType
}

func (n ObjectName) String() string { return n.Checksum.String() + "." + n.Type.String() }
