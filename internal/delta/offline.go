package delta

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

// ApplyOffline applies the delta stored in dir (its superblock and part
// files, as in a repository's deltas/ directory) to the repository, as
// `ostree static-delta apply-offline` does: the delta's objects and commit
// are stored in one transaction, refs are not touched. The delta's
// fallback objects and, for a delta from a commit, that commit must be in
// the repository already.
func ApplyOffline(ctx context.Context, r *repo.Repo, dir string) (*Superblock, error) {
	b, err := readBounded(filepath.Join(dir, "superblock"), MaxSuperblockSize)
	if err != nil {
		return nil, err
	}
	sb, err := ParseSuperblock(b)
	if err != nil {
		return nil, fmt.Errorf("superblock in %s: %w", dir, err)
	}
	if !sb.Name.Scratch() {
		if _, err := r.ReadCommit(sb.Name.From); err != nil {
			return nil, fmt.Errorf("applying delta %s: from commit: %w", sb.Name, err)
		}
	}
	for _, f := range sb.Fallbacks {
		if ok, err := r.HasObject(f.Object); err != nil {
			return nil, err
		} else if !ok {
			return nil, fmt.Errorf("applying delta %s offline: fallback object %s: %w", sb.Name, f.Object, errdefs.ErrNotFound)
		}
	}
	txn, err := r.Begin()
	if err != nil {
		return nil, err
	}
	parts := func(_ context.Context, i int, _ int64) (io.ReadCloser, error) {
		path := filepath.Join(dir, strconv.Itoa(i))
		f, err := os.Open(path)
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s: %w", path, errdefs.ErrNotFound)
		}
		return f, err
	}
	if err := Apply(ctx, txn, sb, parts); err != nil {
		return nil, errors.Join(err, txn.Abort())
	}
	if err := txn.Commit(); err != nil {
		return nil, fmt.Errorf("applying delta %s: %w", sb.Name, err)
	}
	return sb, nil
}

// readBounded reads a file of at most max bytes; a longer file is
// errdefs.ErrCorrupt.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", path, errdefs.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, max, errdefs.ErrCorrupt)
	}
	return b, nil
}
