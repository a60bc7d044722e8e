package graph

import (
	"encoding/json"
	"fmt"
	"io"

	"github.com/strata-os/strata/internal/errdefs"
)

// ReleaseIndex is a stream's releases.json: every release of the stream, oldest first. The
// position of a release in this list is its age_index.
type ReleaseIndex struct {
	Releases []Release `json:"releases"`
}

// Release is one entry of releases.json.
type Release struct {
	Version string `json:"version"`
	// Metadata is the URL of the release's build metadata; carried, not read.
	Metadata  string     `json:"metadata,omitempty"`
	Commits   []Commit   `json:"commits"`
	OCIImages []OCIImage `json:"oci-images,omitempty"`
}

// Commit is the OS commit of a release for one architecture.
type Commit struct {
	Architecture string `json:"architecture"`
	Checksum     string `json:"checksum"`
}

// OCIImage is the OS image of a release for one architecture.
type OCIImage struct {
	Architecture string `json:"architecture"`
	Image        string `json:"image"`
	DigestRef    string `json:"digest-ref"`
}

// Updates is a stream's updates/STREAM.json: what the stream's operators say about releases
// (barriers, dead ends, rollouts). A release it does not name gets no incoming edge.
type Updates struct {
	Stream   string          `json:"stream"`
	Releases []UpdateRelease `json:"releases"`
}

// UpdateRelease is one release's entry in the updates file.
type UpdateRelease struct {
	Version  string         `json:"version"`
	Metadata UpdateMetadata `json:"metadata"`
}

// UpdateMetadata holds the optional policies of a release.
type UpdateMetadata struct {
	Barrier *Reason  `json:"barrier,omitempty"`
	Deadend *Reason  `json:"deadend,omitempty"`
	Rollout *Rollout `json:"rollout,omitempty"`
}

// Reason explains a barrier or a dead end; an empty reason is reported as "generic".
type Reason struct {
	Reason string `json:"reason"`
}

// Rollout spreads a release over time: at StartEpoch a StartPercentage (a fraction, 0.0 to 1.0,
// despite its name) of the fleet may take it, rising linearly to all of it after
// DurationMinutes. Without a duration the fraction stays at StartPercentage.
type Rollout struct {
	StartEpoch      *int64   `json:"start_epoch,omitempty"`
	StartPercentage *float64 `json:"start_percentage,omitempty"`
	DurationMinutes *uint64  `json:"duration_minutes,omitempty"`
}

// maxInputBytes bounds an input file: Fedora CoreOS's stable releases.json is about 200 KB.
const maxInputBytes = 64 << 20

// ParseReleaseIndex reads releases.json. Keys strata does not use are ignored, as Fedora CoreOS's
// own builder does: the file carries build metadata for other consumers.
func ParseReleaseIndex(r io.Reader) (ReleaseIndex, error) {
	var ri ReleaseIndex
	if err := decodeInput(r, &ri); err != nil {
		return ReleaseIndex{}, fmt.Errorf("releases index: %w", err)
	}
	seen := map[string]bool{}
	for i, rel := range ri.Releases {
		if rel.Version == "" {
			return ReleaseIndex{}, fmt.Errorf("releases index: releases[%d] has no version: %w", i, errdefs.ErrInvalid)
		}
		if seen[rel.Version] {
			return ReleaseIndex{}, fmt.Errorf("releases index: version %q listed twice: %w", rel.Version, errdefs.ErrInvalid)
		}
		seen[rel.Version] = true
	}
	return ri, nil
}

// ParseUpdates reads updates/STREAM.json.
func ParseUpdates(r io.Reader) (Updates, error) {
	var u Updates
	if err := decodeInput(r, &u); err != nil {
		return Updates{}, fmt.Errorf("updates: %w", err)
	}
	for i, rel := range u.Releases {
		if rel.Version == "" {
			return Updates{}, fmt.Errorf("updates: releases[%d] has no version: %w", i, errdefs.ErrInvalid)
		}
		if ro := rel.Metadata.Rollout; ro != nil && ro.StartPercentage != nil {
			if p := *ro.StartPercentage; p < 0 || p > 1 || p != p {
				return Updates{}, fmt.Errorf("updates: release %q: start_percentage %v is not a fraction between 0.0 and 1.0: %w", rel.Version, p, errdefs.ErrInvalid)
			}
		}
	}
	return u, nil
}

func decodeInput(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxInputBytes+1))
	if err != nil {
		return err
	}
	if len(data) > maxInputBytes {
		return fmt.Errorf("larger than %d bytes: %w", maxInputBytes, errdefs.ErrInvalid)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%v: %w", err, errdefs.ErrInvalid)
	}
	return nil
}
