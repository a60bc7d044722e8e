package graph

import (
	"fmt"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// Published is one commit of a ref's history as a release: its version metadata and checksum,
// and optionally the OS image that carries it.
type Published struct {
	Version  string
	Checksum string
	// Image and DigestRef name the OS image of the release, when it was pushed to a registry.
	Image, DigestRef string
}

// RolloutPolicy says how releases that the updates file does not know yet are announced.
type RolloutPolicy struct {
	// Start is when their rollout starts.
	Start time.Time
	// Minutes spreads the rollout from 0 to the whole fleet; 0 gives the release to every node
	// at Start.
	Minutes uint64
}

// AddReleases merges a ref's history (oldest first) into a stream's inputs: releases missing from
// ri are appended in order, and each one the updates file does not mention gets a rollout by
// policy, so that it has incoming edges. Entries already in either file are kept as they are:
// operators edit updates files by hand (barriers, dead ends, paused rollouts) and a rebuild must
// not undo that. A version already in ri with another checksum is an error: a published version
// never changes its content.
func AddReleases(ri ReleaseIndex, u Updates, stream, arch string, history []Published, policy RolloutPolicy) (ReleaseIndex, Updates, error) {
	known := map[string]int{}
	for i, rel := range ri.Releases {
		known[rel.Version] = i
	}
	announced := map[string]bool{}
	for _, rel := range u.Releases {
		announced[rel.Version] = true
	}
	if u.Stream == "" {
		u.Stream = stream
	}
	for _, p := range history {
		if p.Version == "" {
			return ri, u, fmt.Errorf("commit %s has no version metadata: %w", p.Checksum, errdefs.ErrInvalid)
		}
		if i, ok := known[p.Version]; ok {
			if err := mergeArch(&ri.Releases[i], arch, p); err != nil {
				return ri, u, err
			}
		} else {
			rel := Release{Version: p.Version}
			if err := mergeArch(&rel, arch, p); err != nil {
				return ri, u, err
			}
			known[p.Version] = len(ri.Releases)
			ri.Releases = append(ri.Releases, rel)
		}
		if !announced[p.Version] {
			start := policy.Start.Unix()
			ro := &Rollout{StartEpoch: &start}
			if policy.Minutes > 0 {
				zero, m := 0.0, policy.Minutes
				ro.StartPercentage, ro.DurationMinutes = &zero, &m
			} else {
				all := 1.0
				ro.StartPercentage = &all
			}
			u.Releases = append(u.Releases, UpdateRelease{Version: p.Version, Metadata: UpdateMetadata{Rollout: ro}})
			announced[p.Version] = true
		}
	}
	return ri, u, nil
}

func mergeArch(rel *Release, arch string, p Published) error {
	found := false
	for _, c := range rel.Commits {
		if c.Architecture == arch {
			if c.Checksum != p.Checksum {
				return fmt.Errorf("version %q is published for %s as commit %s, not %s (a version never changes its content): %w",
					p.Version, arch, c.Checksum, p.Checksum, errdefs.ErrConflict)
			}
			found = true
		}
	}
	if !found {
		rel.Commits = append(rel.Commits, Commit{Architecture: arch, Checksum: p.Checksum})
	}
	if p.DigestRef == "" {
		return nil
	}
	for i, img := range rel.OCIImages {
		if img.Architecture == arch {
			rel.OCIImages[i] = OCIImage{Architecture: arch, Image: p.Image, DigestRef: p.DigestRef}
			return nil
		}
	}
	rel.OCIImages = append(rel.OCIImages, OCIImage{Architecture: arch, Image: p.Image, DigestRef: p.DigestRef})
	return nil
}
