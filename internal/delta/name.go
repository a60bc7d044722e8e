package delta

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// Name identifies a delta: From is zero for a scratch delta (from empty).
type Name struct {
	From, To ostree.Checksum
}

// Scratch reports whether the delta starts from empty.
func (n Name) Scratch() bool { return n.From.IsZero() }

// String is the delta's name as summaries and `ostree static-delta list`
// spell it: "FROM-TO", or "TO" for a scratch delta.
func (n Name) String() string {
	if n.Scratch() {
		return n.To.String()
	}
	return n.From.String() + "-" + n.To.String()
}

// ParseName parses "FROM-TO" or "TO".
func ParseName(s string) (Name, error) {
	from, to, ok := strings.Cut(s, "-")
	if !ok {
		from, to = "", s
	}
	var n Name
	var err error
	if n.To, err = ostree.ParseChecksum(to); err != nil {
		return Name{}, fmt.Errorf("delta name %q: %w", s, errdefs.ErrInvalid)
	}
	if ok {
		if n.From, err = ostree.ParseChecksum(from); err != nil || n.From.IsZero() {
			return Name{}, fmt.Errorf("delta name %q: %w", s, errdefs.ErrInvalid)
		}
	}
	return n, nil
}

// Dir is the delta's directory relative to the repository, with a slash
// between the first two characters of the first modified-base64 checksum
// and the rest, as libostree lays it out.
func (n Name) Dir() string {
	to := n.To.ModifiedBase64()
	if n.Scratch() {
		return "deltas/" + to[:2] + "/" + to[2:]
	}
	from := n.From.ModifiedBase64()
	return "deltas/" + from[:2] + "/" + from[2:] + "-" + to
}

// SuperblockPath is the superblock's path relative to the repository.
func (n Name) SuperblockPath() string { return n.Dir() + "/superblock" }

// PartPath is part i's path relative to the repository; it is also the key
// of an inline part in the superblock's metadata.
func (n Name) PartPath(i int) string { return n.Dir() + "/" + strconv.Itoa(i) }

// CommitMetaKey is the superblock metadata key that carries the target
// commit's detached metadata.
func (n Name) CommitMetaKey() string { return n.Dir() + "/commitmeta" }

// IndexPath is the path, relative to the repository, of the delta index of
// deltas to commit to (delta-indexes/XX/REST.index).
func IndexPath(to ostree.Checksum) string {
	b := to.ModifiedBase64()
	return "delta-indexes/" + b[:2] + "/" + b[2:] + ".index"
}

// parseDir is Dir's inverse over the two path elements below deltas/.
func parseDir(prefix, rest string) (Name, bool) {
	from, to, ok := strings.Cut(rest, "-")
	if !ok {
		c, ok := fromModifiedBase64(prefix + rest)
		return Name{To: c}, ok
	}
	f, ok1 := fromModifiedBase64(prefix + from)
	t, ok2 := fromModifiedBase64(to)
	return Name{From: f, To: t}, ok1 && ok2 && !f.IsZero()
}

// fromModifiedBase64 decodes a 43-character modified-base64 checksum.
func fromModifiedBase64(s string) (ostree.Checksum, bool) {
	if len(s) != 43 {
		return ostree.Checksum{}, false
	}
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, "_", "/") + "=")
	if err != nil || len(b) != 32 {
		return ostree.Checksum{}, false
	}
	c := ostree.Checksum(b)
	return c, c.ModifiedBase64() == s
}

func commitName(c ostree.Checksum) ostree.ObjectName {
	return ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}
}
