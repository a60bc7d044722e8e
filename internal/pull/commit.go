package pull

import (
	"context"
	"fmt"

	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// commit fetches commit c's detached metadata and the commit (unless it is
// stored or staged already), verifies the checksum and the signature, and
// stages both. size is the commit's size from the summary, 0 if unknown.
// It returns the parsed commit and the key that signed it.
//
// Detached metadata is always fetched: it is not content addressed, and a
// signature may have been added since the commit was last pulled.
func (p *puller) commit(ctx context.Context, c ostree.Checksum, size uint64) (*ostree.Commit, string, error) {
	n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit}
	detached, err := p.tr.getOptional(ctx, objectPath(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommitMeta}), repo.MaxMetadataSize)
	if err != nil {
		return nil, "", fmt.Errorf("fetching detached metadata of commit %s: %w", c, err)
	}
	have, err := p.txn.HasObject(n)
	if err != nil {
		return nil, "", err
	}
	limit := int64(repo.MaxMetadataSize)
	if size > 0 && size < repo.MaxMetadataSize {
		limit = int64(size)
	}
	data, err := p.metadata(ctx, p.txn, n, have, limit)
	if err != nil {
		return nil, "", err
	}
	cm, err := ostree.ParseCommit(data)
	if err != nil {
		return nil, "", fmt.Errorf("object %s: %w", n, err)
	}
	var key string
	if p.opts.Verifier != nil {
		if key, err = p.opts.Verifier.Verify(data, detached); err != nil {
			return nil, "", fmt.Errorf("verifying the signature of commit %s: %w", c, err)
		}
	}
	if !have {
		if err := p.txn.WriteMetadataExpect(ostree.ObjectCommit, c, data); err != nil {
			return nil, "", err
		}
	}
	if detached != nil {
		if err := p.txn.WriteCommitMeta(c, detached); err != nil {
			return nil, "", err
		}
	}
	return cm, key, nil
}

// metadata returns the verified bytes of metadata object n: read from the
// transaction when have is set, fetched otherwise (at most limit bytes, 0
// meaning repo.MaxMetadataSize). It does not store what it fetched.
func (p *puller) metadata(ctx context.Context, txn *repo.Txn, n ostree.ObjectName, have bool, limit int64) ([]byte, error) {
	if have {
		// Verified just below, with pull's own message.
		data, err := txn.ReadMetadataUnverified(n.Type, n.Checksum)
		if err != nil {
			return nil, err
		}
		if err := checkMetadata(n, data); err != nil {
			return nil, fmt.Errorf("local %w (run strata repo fsck)", err)
		}
		if n.Type != ostree.ObjectCommit {
			p.stats.skipped()
		}
		return data, nil
	}
	if limit <= 0 {
		limit = repo.MaxMetadataSize
	}
	data, err := p.tr.get(ctx, objectPath(n), limit)
	if err != nil {
		return nil, fmt.Errorf("fetching %s: %w", n, err)
	}
	if err := checkMetadata(n, data); err != nil {
		return nil, fmt.Errorf("fetched %w", err)
	}
	if n.Type != ostree.ObjectCommit {
		p.stats.fetched()
	}
	return data, nil
}
