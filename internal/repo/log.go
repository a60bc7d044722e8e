package repo

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// LogEntry is one commit of a history.
type LogEntry struct {
	Checksum ostree.Checksum
	Commit   *ostree.Commit
}

// History is a commit and its ancestors, newest first.
type History struct {
	Commits []LogEntry
	// Truncated is set when the oldest commit listed has a parent that is
	// not in the repository (a pull of the newest commit only, or a
	// pruned history): ostree prints "<< History beyond this commit not
	// fetched >>" there.
	Truncated bool
}

// Log returns the history of rev by following parent links until a commit
// without parent or a parent that is not stored. Every commit read is
// verified against its checksum.
func Log(ctx context.Context, r *Repo, rev string) (History, error) {
	c, err := r.ResolveRev(rev)
	if err != nil {
		return History{}, fmt.Errorf("reading history of %s: %w", rev, err)
	}
	var h History
	seen := map[ostree.Checksum]bool{}
	for {
		if err := ctx.Err(); err != nil {
			return History{}, err
		}
		cm, err := r.readCommitChecked(c)
		if errors.Is(err, errdefs.ErrNotFound) && len(h.Commits) > 0 {
			h.Truncated = true
			return h, nil
		}
		if err != nil {
			return History{}, fmt.Errorf("reading history of %s: %w", rev, err)
		}
		h.Commits = append(h.Commits, LogEntry{Checksum: c, Commit: cm})
		seen[c] = true
		if cm.Parent.IsZero() {
			return h, nil
		}
		if seen[cm.Parent] {
			return History{}, fmt.Errorf("reading history of %s: commit %s is its own ancestor: %w", rev, cm.Parent, errdefs.ErrCorrupt)
		}
		c = cm.Parent
	}
}

// CommitDetails is everything `repo show` prints about a commit.
type CommitDetails struct {
	Checksum        ostree.Checksum
	Commit          *ostree.Commit
	ContentChecksum ostree.Checksum
	// Detached is the commit's detached metadata (signatures), nil if it
	// has none.
	Detached ostree.Metadata
	// ParentStored tells whether the parent commit (if any) is in the
	// repository.
	ParentStored bool
}

// Show reads and verifies the commit rev and its detached metadata.
func Show(r *Repo, rev string) (*CommitDetails, error) {
	c, err := r.ResolveRev(rev)
	if err != nil {
		return nil, fmt.Errorf("showing %s: %w", rev, err)
	}
	cm, err := r.readCommitChecked(c)
	if err != nil {
		return nil, fmt.Errorf("showing %s: %w", rev, err)
	}
	d := &CommitDetails{Checksum: c, Commit: cm, ContentChecksum: cm.ContentChecksum()}
	b, err := r.ReadCommitMeta(c)
	if err != nil {
		return nil, fmt.Errorf("showing %s: %w", rev, err)
	}
	if b != nil {
		if d.Detached, err = ostree.ParseMetadata(b); err != nil {
			return nil, fmt.Errorf("showing %s: detached metadata: %w: %w", rev, errdefs.ErrCorrupt, err)
		}
	}
	if !cm.Parent.IsZero() {
		if d.ParentStored, err = r.HasObject(ostree.ObjectName{Checksum: cm.Parent, Type: ostree.ObjectCommit}); err != nil {
			return nil, fmt.Errorf("showing %s: %w", rev, err)
		}
	}
	return d, nil
}
