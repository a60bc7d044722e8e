package repo

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
)

// TreeSource is where a committed tree comes from: a directory (DirSource)
// or a tar stream (TarSource).
type TreeSource interface {
	// build adds every entry of the source to b, dispatching content to
	// b's workers; it returns once everything has been handed over.
	build(ctx context.Context, b *treeBuilder) error
}

// TreeOptions tune how a tree is turned into objects (WriteTree).
type TreeOptions struct {
	// Progress, if set, is told the number of files (regular files and
	// symlinks) found so far (SetTotal, growing) and each one stored
	// (Add). Its methods may be called from several goroutines at once.
	Progress interface {
		SetTotal(n int64)
		Add(n int64)
	}
	// Workers bounds the goroutines that hash, compress and write file
	// content; 0 means 2×GOMAXPROCS (at least 4), so that reading a cold
	// tree overlaps with compressing.
	Workers int
	// CanonicalPermissions is `ostree commit --canonical-permissions`:
	// uid/gid 0, no xattrs, permissions masked to 0755 (docs/formats/objects.md). It is
	// always on for bare-user-only repositories, as in libostree.
	CanonicalPermissions bool
	// NoXattrs drops extended attributes (`ostree commit --no-xattrs`);
	// the repository's core.disable-xattrs=true forces it.
	NoXattrs bool
	// OwnerUID and OwnerGID, if set, replace the owner of every file and
	// directory (`ostree commit --owner-uid/--owner-gid`).
	OwnerUID, OwnerGID *uint32
}

// CommitOptions describe a commit (CommitTree).
type CommitOptions struct {
	TreeOptions
	// Branch is the ref moved to the new commit; "" makes an orphan commit
	// that no ref points to (`ostree commit --orphan`).
	Branch  string
	Subject string
	Body    string
	// Timestamp is the commit time. The zero value means
	// $SOURCE_DATE_EPOCH when set, else Now(), as libostree's
	// ostree_repo_write_commit decides (docs/formats/objects.md).
	Timestamp time.Time
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Metadata is the commit metadata in order (`--metadata K=V` strings
	// in command-line order). Order is part of the checksum (docs/formats/objects.md).
	Metadata ostree.Metadata
	// NoBindings leaves out ostree.ref-binding (and
	// ostree.collection-binding), like `ostree commit --no-bindings`.
	// Without it an orphan commit (no Branch) gets an empty ref-binding
	// list, as from `ostree commit --orphan`.
	NoBindings bool
	// Parent is the parent revision: "" means the current head of Branch
	// (none if the branch does not exist yet), "none" means no parent,
	// anything else is resolved with ResolveRev.
	Parent string
	// Sign, if set, is given the new commit's bytes and its current
	// detached metadata (nil if none) and returns the detached metadata to
	// store with it (e.g. with an ostree.sign.ed25519 signature added),
	// written in the same transaction.
	Sign func(commit, detached []byte) ([]byte, error)
}

// CommitStats describe what a commit did.
type CommitStats struct {
	Commit   ostree.Checksum
	Parent   ostree.Checksum // zero: no parent
	RootTree ostree.Checksum
	RootMeta ostree.Checksum

	Dirs     int64 // directories, the root included
	Files    int64 // regular files
	Symlinks int64
	Bytes    int64 // payload bytes of the regular files

	ContentWritten int64 // content objects stored by this commit
	ContentReused  int64 // files whose content object already existed
	MetaWritten    int64 // dirtree, dirmeta and commit objects stored
	MetaReused     int64
	BytesWritten   int64 // bytes of content objects written (compressed in archive mode)
}

// CommitTree writes the tree of src and a commit object for it into r in
// one transaction, and moves opts.Branch to the new commit. The ref moves
// in Txn.Commit, the transaction's commit point: on any error the
// transaction is aborted and no ref changes.
//
// The result is the commit checksum `ostree commit` computes for the same
// tree, subject, body, timestamp and metadata: metadata is opts.Metadata
// in order, then ostree.ref-binding = [Branch] (unless NoBindings; [] for
// an orphan commit, as ostree writes it), then ostree.collection-binding when the repository has a
// core.collection-id (docs/formats/objects.md).
func CommitTree(ctx context.Context, r *Repo, src TreeSource, opts CommitOptions) (ostree.Checksum, CommitStats, error) {
	var st CommitStats
	if opts.Branch != "" {
		if err := ostree.ValidateRef(opts.Branch); err != nil {
			return ostree.Checksum{}, st, err
		}
	}
	parent, err := r.commitParent(opts)
	if err != nil {
		return ostree.Checksum{}, st, err
	}
	st.Parent = parent
	ts, err := commitTime(opts)
	if err != nil {
		return ostree.Checksum{}, st, err
	}
	meta, err := r.commitMetadata(opts)
	if err != nil {
		return ostree.Checksum{}, st, err
	}
	t, err := r.Begin()
	if err != nil {
		return ostree.Checksum{}, st, err
	}
	c, err := writeCommit(ctx, t, src, opts, &ostree.Commit{
		Metadata: meta, Parent: parent, Subject: opts.Subject, Body: opts.Body, Timestamp: ts,
	}, &st)
	if err != nil {
		return ostree.Checksum{}, st, errors.Join(err, t.Abort())
	}
	if err := t.Commit(); err != nil {
		return ostree.Checksum{}, st, fmt.Errorf("committing transaction of commit %s: %w", c, err)
	}
	return c, st, nil
}

// writeCommit writes the tree, the commit object, its detached metadata and
// the ref update into t.
func writeCommit(ctx context.Context, t *Txn, src TreeSource, opts CommitOptions, cm *ostree.Commit, st *CommitStats) (ostree.Checksum, error) {
	var err error
	cm.RootTree, cm.RootMeta, err = writeTree(ctx, t, src, opts.TreeOptions, st)
	if err != nil {
		return ostree.Checksum{}, err
	}
	st.RootTree, st.RootMeta = cm.RootTree, cm.RootMeta
	data, err := cm.Marshal()
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("serializing commit: %w", err)
	}
	c, written, err := t.storeMeta(ostree.ObjectCommit, data)
	if err != nil {
		return c, err
	}
	st.Commit = c
	st.countMeta(written)
	if opts.Sign != nil {
		old, err := t.r.ReadCommitMeta(c)
		if err != nil {
			return c, fmt.Errorf("reading detached metadata of commit %s: %w", c, err)
		}
		detached, err := opts.Sign(data, old)
		if err != nil {
			return c, fmt.Errorf("signing commit %s: %w", c, err)
		}
		if err := t.WriteCommitMeta(c, detached); err != nil {
			return c, err
		}
	}
	if opts.Branch != "" {
		if err := t.SetRef("", opts.Branch, c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// WriteTree writes the objects of src's tree into t and returns the root
// dirtree and dirmeta checksums, for callers that build their own commit.
func WriteTree(ctx context.Context, t *Txn, src TreeSource, opts TreeOptions) (tree, meta ostree.Checksum, st CommitStats, err error) {
	tree, meta, err = writeTree(ctx, t, src, opts, &st)
	st.RootTree, st.RootMeta = tree, meta
	return tree, meta, st, err
}

func (r *Repo) commitParent(opts CommitOptions) (ostree.Checksum, error) {
	switch opts.Parent {
	case "none":
		return ostree.Checksum{}, nil
	case "":
		if opts.Branch == "" {
			return ostree.Checksum{}, nil
		}
		c, err := r.ReadRef("", opts.Branch)
		if errors.Is(err, errdefs.ErrNotFound) {
			return ostree.Checksum{}, nil
		}
		if err != nil {
			return c, fmt.Errorf("reading parent from branch %q: %w", opts.Branch, err)
		}
		return c, nil
	}
	c, err := r.ResolveRev(opts.Parent)
	if err != nil {
		return c, fmt.Errorf("resolving parent: %w", err)
	}
	return c, nil
}

func commitTime(opts CommitOptions) (uint64, error) {
	if !opts.Timestamp.IsZero() {
		if opts.Timestamp.Unix() < 0 {
			return 0, fmt.Errorf("commit timestamp %s is before 1970: %w", opts.Timestamp, errdefs.ErrInvalid)
		}
		return uint64(opts.Timestamp.Unix()), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q is not a number of seconds: %w", s, errdefs.ErrInvalid)
		}
		return v, nil
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	return uint64(now().Unix()), nil
}

func (r *Repo) commitMetadata(opts CommitOptions) (ostree.Metadata, error) {
	meta := make(ostree.Metadata, 0, len(opts.Metadata)+2)
	for _, e := range opts.Metadata {
		k, _ := e.Key.(string)
		if k == "" {
			return nil, fmt.Errorf("commit metadata key is empty: %w", errdefs.ErrInvalid)
		}
		// A key given twice is kept twice, as `ostree commit` keeps it
		// (readers take the first).
		meta = append(meta, e)
	}
	if opts.NoBindings {
		return meta, nil
	}
	// An orphan commit gets an empty list, as from `ostree commit --orphan`
	// (2022.7 writes @as [] unless --no-bindings).
	refs := []any{}
	if opts.Branch != "" {
		refs = append(refs, opts.Branch)
	}
	meta = append(meta, gvariant.DictEntry{Key: ostree.MetaRefBinding, Value: gvariant.NewVariant("as", refs)})
	if cid, ok := r.config.Get("core", "collection-id"); ok && cid != "" {
		meta = append(meta, gvariant.DictEntry{Key: ostree.MetaCollectionBinding, Value: gvariant.NewVariant("s", cid)})
	}
	return meta, nil
}

// storeMeta stores a metadata object unless it exists and reports whether
// it wrote it.
func (t *Txn) storeMeta(typ ostree.ObjectType, data []byte) (ostree.Checksum, bool, error) {
	c := ostree.MetadataChecksum(data)
	if len(data) > MaxMetadataSize {
		return c, false, fmt.Errorf("%s %s is larger than %d bytes: %w", typ, c, MaxMetadataSize, errdefs.ErrInvalid)
	}
	n := ostree.ObjectName{Checksum: c, Type: typ}
	if ok, err := t.HasObject(n); ok || err != nil {
		return c, false, err
	}
	return c, true, t.stageBytes(n, data)
}

func (st *CommitStats) countMeta(written bool) {
	if written {
		st.MetaWritten++
	} else {
		st.MetaReused++
	}
}
