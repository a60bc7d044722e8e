package delta

import (
	"context"
	"errors"
	"fmt"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

// GenerateForRefs makes sure every local ref (refs/heads) has a delta to
// its head from each of its last n releases (the head's parent, its
// parent, ... as far as the repository holds them), so that a client that
// skipped releases still gets one delta, and, with scratch, a delta from
// empty for first pulls. Deltas that exist are kept. It returns the names
// of the deltas it wrote.
func GenerateForRefs(ctx context.Context, r *repo.Repo, n int, scratch bool, opts Options) ([]Name, error) {
	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	var wrote []Name
	gen := func(name Name) error {
		if _, err := ReadSuperblockFile(r, name); err == nil {
			return nil
		} else if !errors.Is(err, errdefs.ErrNotFound) {
			return err
		}
		if _, err := Generate(ctx, r, name.From, name.To, opts); err != nil {
			return err
		}
		wrote = append(wrote, name)
		return nil
	}
	for _, ref := range refs {
		if ref.Remote != "" {
			continue
		}
		head := ref.Checksum
		if scratch {
			if err := gen(Name{To: head}); err != nil {
				return wrote, fmt.Errorf("ref %s: %w", ref.Name, err)
			}
		}
		c := head
		for i := 0; i < n; i++ {
			cm, err := r.ReadCommit(c)
			if err != nil {
				return wrote, fmt.Errorf("ref %s: %w", ref.Name, err)
			}
			if cm.Parent.IsZero() {
				break
			}
			if ok, err := r.HasObject(commitName(cm.Parent)); err != nil {
				return wrote, err
			} else if !ok {
				break // history pruned here
			}
			if err := gen(Name{From: cm.Parent, To: head}); err != nil {
				return wrote, fmt.Errorf("ref %s: %w", ref.Name, err)
			}
			c = cm.Parent
		}
	}
	return wrote, nil
}
