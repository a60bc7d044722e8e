package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

// The files of a published repository's index (docs/formats/summary.md).
const (
	SummaryFile    = "summary"
	SummarySigFile = "summary.sig"
)

// SummaryOptions tune RegenerateSummary.
type SummaryOptions struct {
	// Now is the generation time written as ostree.summary.last-modified;
	// nil means time.Now.
	Now func() time.Time
	// Sign, if set, returns the summary.sig to publish for the summary
	// bytes it is given (an a{sv} of signatures, docs/formats/signatures.md).
	Sign func(summary []byte) ([]byte, error)
	// StaticDeltas, if set, returns the summary's ostree.static-deltas
	// map (delta name to the sha256 of its superblock, an a{sv} of ay),
	// which package delta computes; an empty map is left out.
	StaticDeltas func() ([]gvariant.DictEntry, error)
}

// BuildSummary computes the summary of the repository's local refs
// (refs/heads) the way `ostree summary -u` does (docs/formats/summary.md): one entry per
// ref with the commit's size, checksum, version and timestamp, and the
// additional metadata mode, last-modified, tombstone-commits and
// indexed-deltas. Remote refs are not published. It writes nothing.
func (r *Repo) BuildSummary(now time.Time) (*ostree.Summary, error) {
	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	s := &ostree.Summary{}
	for _, ref := range refs {
		if ref.Remote != "" {
			continue
		}
		data, err := r.ReadMetadata(ostree.ObjectCommit, ref.Checksum)
		if err != nil {
			return nil, fmt.Errorf("summarizing ref %s: %w", ref.Name, err)
		}
		cm, err := ostree.ParseCommit(data)
		if err != nil {
			return nil, fmt.Errorf("summarizing ref %s: commit %s: %w", ref.Name, ref.Checksum, err)
		}
		s.Refs = append(s.Refs, ostree.NewSummaryRef(ref.Name, data, cm))
	}
	tombstones, err := r.config.GetBool("core", "tombstone-commits", false)
	if err != nil {
		return nil, err
	}
	// Key order as libostree's GVariantDict yields it (docs/formats/summary.md).
	s.Metadata.Set(ostree.SummaryMode, gvariant.NewVariant("s", r.mode.configName()))
	s.Metadata.Set(ostree.SummaryLastModified, ostree.BETimestamp(uint64(now.Unix())))
	s.Metadata.Set(ostree.SummaryTombstones, gvariant.NewVariant("b", tombstones))
	s.Metadata.Set(ostree.SummaryIndexedDeltas, gvariant.NewVariant("b", true))
	return s, nil
}

// RegenerateSummary writes the summary file of the repository's local
// refs (BuildSummary) and returns its bytes. Any summary.sig is removed
// first, as `ostree summary -u` does, because it signs the old bytes; with
// opts.Sign a new one is written after the summary. Each file is replaced
// atomically. It holds the repository lock exclusively, so the summary
// matches one state of the refs.
func (r *Repo) RegenerateSummary(opts SummaryOptions) ([]byte, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	unlock, err := r.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	s, err := r.BuildSummary(now())
	if err != nil {
		return nil, err
	}
	if opts.StaticDeltas != nil {
		deltas, err := opts.StaticDeltas()
		if err != nil {
			return nil, fmt.Errorf("listing static deltas: %w", err)
		}
		if len(deltas) > 0 {
			s.Metadata.Set(ostree.SummaryStaticDeltas, gvariant.NewVariant("a{sv}", deltas))
		}
	}
	data, err := s.Marshal()
	if err != nil {
		return nil, fmt.Errorf("serializing summary: %w", err)
	}
	var sig []byte
	if opts.Sign != nil {
		if sig, err = opts.Sign(data); err != nil {
			return nil, fmt.Errorf("signing summary: %w", err)
		}
	}
	sigPath := filepath.Join(r.path, SummarySigFile)
	if err := os.Remove(sigPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("removing stale %s: %w", SummarySigFile, err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(r.path, SummaryFile), data, 0o644); err != nil {
		return nil, fmt.Errorf("writing summary: %w", err)
	}
	if sig != nil {
		if err := fsutil.WriteFileAtomic(sigPath, sig, 0o644); err != nil {
			return nil, fmt.Errorf("writing %s: %w", SummarySigFile, err)
		}
	}
	return data, nil
}

// ReadSummary returns the bytes of the repository's summary file and of its
// summary.sig (nil when there is none). A repository without a summary is
// errdefs.ErrNotFound.
func (r *Repo) ReadSummary() (summary, sig []byte, err error) {
	summary, err = os.ReadFile(filepath.Join(r.path, SummaryFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("summary of repository %s: %w", r.path, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading summary: %w", err)
	}
	sig, err = os.ReadFile(filepath.Join(r.path, SummarySigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return summary, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading %s: %w", SummarySigFile, err)
	}
	return summary, sig, nil
}
