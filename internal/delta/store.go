package delta

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// List returns the names of the deltas in the repository (those with a
// superblock), sorted by name.
func List(r *repo.Repo) ([]Name, error) {
	root := filepath.Join(r.Path(), "deltas")
	prefixes, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("listing deltas: %w", err)
	}
	var out []Name
	for _, p := range prefixes {
		if !p.IsDir() || len(p.Name()) != 2 {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, p.Name()))
		if err != nil {
			return nil, fmt.Errorf("listing deltas: %w", err)
		}
		for _, e := range ents {
			n, ok := parseDir(p.Name(), e.Name())
			if !ok || n.Dir() != "deltas/"+p.Name()+"/"+e.Name() {
				continue
			}
			if _, err := os.Stat(filepath.Join(r.Path(), n.SuperblockPath())); err == nil {
				out = append(out, n)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// ReadSuperblockFile returns the bytes of a delta's superblock.
func ReadSuperblockFile(r *repo.Repo, n Name) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(r.Path(), n.SuperblockPath()))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("delta %s: %w", n, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("reading superblock of delta %s: %w", n, err)
	}
	return b, nil
}

// Read reads and parses a delta's superblock.
func Read(r *repo.Repo, n Name) (*Superblock, error) {
	b, err := ReadSuperblockFile(r, n)
	if err != nil {
		return nil, err
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return nil, fmt.Errorf("delta %s: %w", n, err)
	}
	if sb.Name != n {
		return nil, fmt.Errorf("delta %s: superblock is of delta %s: %w", n, sb.Name, errdefs.ErrCorrupt)
	}
	return sb, nil
}

// Delete removes a delta: its superblock first, so that no listing sees a
// delta without parts, then its directory.
func Delete(r *repo.Repo, n Name) error {
	sp := filepath.Join(r.Path(), n.SuperblockPath())
	if err := os.Remove(sp); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delta %s: %w", n, errdefs.ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("deleting delta %s: %w", n, err)
	}
	if err := fsutil.RemoveTree(filepath.Join(r.Path(), n.Dir())); err != nil {
		return fmt.Errorf("deleting delta %s: %w", n, err)
	}
	return nil
}

// Digests returns, for each delta in the repository, the sha256 of its
// superblock: the ostree.static-deltas map of the summary.
func Digests(r *repo.Repo) (map[string]ostree.Checksum, error) {
	names, err := List(r)
	if err != nil {
		return nil, err
	}
	out := map[string]ostree.Checksum{}
	for _, n := range names {
		b, err := ReadSuperblockFile(r, n)
		if err != nil {
			return nil, err
		}
		out[n.String()] = sha256.Sum256(b)
	}
	return out, nil
}

// DigestMap is the a{sv} value of ostree.static-deltas for the given
// digests, sorted by name.
func DigestMap(digests map[string]ostree.Checksum) []gvariant.DictEntry {
	keys := make([]string, 0, len(digests))
	for k := range digests {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := []gvariant.DictEntry{}
	for _, k := range keys {
		d := digests[k]
		out = append(out, gvariant.DictEntry{Key: k, Value: gvariant.NewVariant("ay", d[:])})
	}
	return out
}

// Reindex rewrites the delta indexes (delta-indexes/XX/REST.index, one per
// target commit, as `ostree static-delta reindex` does) from the deltas in
// the repository, and removes the indexes of targets without deltas.
// Clients of a summary with ostree.indexed-deltas read these.
func Reindex(r *repo.Repo) error {
	digests, err := Digests(r)
	if err != nil {
		return err
	}
	byTo := map[ostree.Checksum]map[string]ostree.Checksum{}
	for k, d := range digests {
		n, err := ParseName(k)
		if err != nil {
			return err
		}
		if byTo[n.To] == nil {
			byTo[n.To] = map[string]ostree.Checksum{}
		}
		byTo[n.To][k] = d
	}
	keep := map[string]bool{}
	for to, m := range byTo {
		meta := ostree.Metadata{}
		meta.Set(ostree.SummaryStaticDeltas, gvariant.NewVariant("a{sv}", DigestMap(m)))
		data, err := meta.Marshal()
		if err != nil {
			return fmt.Errorf("serializing delta index of %s: %w", to, err)
		}
		p := filepath.Join(r.Path(), IndexPath(to))
		keep[p] = true
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("writing delta index of %s: %w", to, err)
		}
		if err := fsutil.WriteFileAtomic(p, data, 0o644); err != nil {
			return fmt.Errorf("writing delta index of %s: %w", to, err)
		}
	}
	old, _ := filepath.Glob(filepath.Join(r.Path(), "delta-indexes", "*", "*.index"))
	for _, p := range old {
		if !keep[p] {
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("removing stale delta index: %w", err)
			}
		}
	}
	return nil
}
