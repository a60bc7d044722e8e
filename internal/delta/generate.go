package delta

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Defaults of Options, libostree's defaults.
const (
	DefaultMinFallbackSize = 4_000_000
	DefaultMaxChunkSize    = 32_000_000
)

// Options tune Generate.
type Options struct {
	// Inline puts the parts into the superblock's metadata instead of
	// files beside it.
	Inline bool
	// MinFallbackSize: content objects at least this long are fallback
	// objects; 0 means DefaultMinFallbackSize.
	MinFallbackSize int64
	// MaxChunkSize: a part is closed before its payload grows past this
	// (a single larger object gets a part of its own); 0 means
	// DefaultMaxChunkSize, at most MaxPartSize.
	MaxChunkSize int64
	// Now is the generation time written into the superblock; nil means
	// time.Now.
	Now func() time.Time
}

// Generate writes the delta from commit from (zero: from empty) to commit to
// into the repository and returns its superblock. Every object to reaches
// and from does not is carried: metadata objects and content objects below
// MinFallbackSize spliced whole into parts, larger content objects as
// fallbacks. The parts are written first and the superblock last, so a
// superblock on disk always has its parts; an existing delta of that name is
// replaced.
func Generate(ctx context.Context, r *repo.Repo, from, to ostree.Checksum, opts Options) (*Superblock, error) {
	if opts.MinFallbackSize <= 0 {
		opts.MinFallbackSize = DefaultMinFallbackSize
	}
	if opts.MaxChunkSize <= 0 {
		opts.MaxChunkSize = DefaultMaxChunkSize
	}
	opts.MaxChunkSize = min(opts.MaxChunkSize, MaxPartSize)
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	name := Name{From: from, To: to}
	commit, err := r.ReadMetadata(ostree.ObjectCommit, to)
	if err != nil {
		return nil, fmt.Errorf("generating delta %s: reading target commit: %w", name, err)
	}
	have := map[ostree.ObjectName]bool{}
	if !name.Scratch() {
		if err := reachable(ctx, r, from, func(n ostree.ObjectName) { have[n] = true }); err != nil {
			return nil, fmt.Errorf("generating delta %s: objects of %s: %w", name, from, err)
		}
	}
	var want []ostree.ObjectName
	err = reachable(ctx, r, to, func(n ostree.ObjectName) {
		if !have[n] {
			want = append(want, n)
		}
	})
	if err != nil {
		return nil, fmt.Errorf("generating delta %s: objects of %s: %w", name, to, err)
	}
	sb := &Superblock{Name: name, Commit: commit, Timestamp: now().UTC()}
	sb.Metadata.Set(MetaEndianness, gvariant.NewVariant("y", uint8('l')))
	if cm, err := r.ReadCommitMeta(to); err != nil {
		return nil, fmt.Errorf("generating delta %s: %w", name, err)
	} else if cm != nil {
		v, err := gvariant.Unmarshal(gvariant.MustType("a{sv}"), cm)
		if err != nil {
			return nil, fmt.Errorf("generating delta %s: detached metadata of %s: %w", name, to, err)
		}
		sb.Metadata.Set(name.CommitMetaKey(), gvariant.NewVariant("a{sv}", v))
	}
	b := &builder{r: r, sb: sb, opts: opts}
	for _, n := range want {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := b.add(n); err != nil {
			return nil, fmt.Errorf("generating delta %s: object %s: %w", name, n, err)
		}
	}
	if err := b.flush(); err != nil {
		return nil, fmt.Errorf("generating delta %s: %w", name, err)
	}
	if err := b.write(); err != nil {
		return nil, fmt.Errorf("writing delta %s: %w", name, err)
	}
	return sb, nil
}

// reachable calls fn once for each dirtree, dirmeta and content object the
// commit reaches, a directory before what it holds.
func reachable(ctx context.Context, r *repo.Repo, c ostree.Checksum, fn func(ostree.ObjectName)) error {
	cm, err := r.ReadCommit(c)
	if err != nil {
		return err
	}
	seen := map[ostree.ObjectName]bool{}
	visit := func(n ostree.ObjectName) bool {
		if seen[n] {
			return false
		}
		seen[n] = true
		fn(n)
		return true
	}
	var dir func(tree, meta ostree.Checksum) error
	dir = func(tree, meta ostree.Checksum) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		visit(ostree.ObjectName{Checksum: meta, Type: ostree.ObjectDirMeta})
		if !visit(ostree.ObjectName{Checksum: tree, Type: ostree.ObjectDirTree}) {
			return nil
		}
		t, err := r.ReadDirTree(tree)
		if err != nil {
			return err
		}
		for _, f := range t.Files {
			visit(ostree.ObjectName{Checksum: f.Checksum, Type: ostree.ObjectFile})
		}
		for _, d := range t.Dirs {
			if err := dir(d.Tree, d.Meta); err != nil {
				return err
			}
		}
		return nil
	}
	return dir(cm.RootTree, cm.RootMeta)
}

// builder accumulates objects into the current part.
type builder struct {
	r     *repo.Repo
	sb    *Superblock
	opts  Options
	part  Part
	objs  []ostree.ObjectName
	modes map[Mode]uint64
	xkeys map[string]uint64
	files [][]byte // part files, by index, when not inline
}

func (b *builder) add(n ostree.ObjectName) error {
	if n.Type != ostree.ObjectFile {
		data, err := b.r.ReadMetadata(n.Type, n.Checksum)
		if err != nil {
			return err
		}
		if err := b.room(int64(len(data))); err != nil {
			return err
		}
		b.part.Ops = append(b.part.Ops, opOpenSpliceAndClose)
		b.part.Ops = appendVarint(b.part.Ops, uint64(len(data)))
		b.part.Ops = appendVarint(b.part.Ops, uint64(len(b.part.Raw)))
		b.part.Raw = append(b.part.Raw, data...)
		b.objs = append(b.objs, n)
		return nil
	}
	c, err := b.r.OpenContent(n.Checksum)
	if err != nil {
		return err
	}
	defer c.Close()
	if c.Size >= b.opts.MinFallbackSize {
		st, err := os.Stat(b.r.ObjectPath(n))
		if err != nil {
			return err
		}
		b.sb.Fallbacks = append(b.sb.Fallbacks, Fallback{Object: n, Size: uint64(st.Size()), UncompressedSize: uint64(c.Size)})
		return nil
	}
	size := c.Size
	if c.Info.IsSymlink() {
		size = int64(len(c.Info.SymlinkTarget))
	}
	if err := b.room(size); err != nil {
		return err
	}
	mi := b.modeIndex(Mode{UID: c.Info.UID, GID: c.Info.GID, Mode: c.Info.Mode})
	xi := b.xattrIndex(c.Info.Xattrs)
	off := len(b.part.Raw)
	if c.Info.IsSymlink() {
		b.part.Raw = append(b.part.Raw, c.Info.SymlinkTarget...)
	} else {
		b.part.Raw = append(b.part.Raw, make([]byte, size)...)
		if _, err := io.ReadFull(c, b.part.Raw[off:]); err != nil {
			return fmt.Errorf("reading payload: %w", err)
		}
	}
	b.part.Ops = append(b.part.Ops, opOpenSpliceAndClose)
	for _, x := range []uint64{mi, xi, uint64(size), uint64(off)} {
		b.part.Ops = appendVarint(b.part.Ops, x)
	}
	b.objs = append(b.objs, n)
	return nil
}

// room closes the current part if adding n raw bytes would take it past
// the chunk size.
func (b *builder) room(n int64) error {
	if len(b.objs) > 0 && int64(len(b.part.Raw))+n > b.opts.MaxChunkSize {
		return b.flush()
	}
	if n > MaxPartSize-1<<20 {
		return fmt.Errorf("object of %d bytes does not fit a part (raise the fallback size below %d): %w", n, MaxPartSize, errdefs.ErrInvalid)
	}
	return nil
}

func (b *builder) modeIndex(m Mode) uint64 {
	if b.modes == nil {
		b.modes = map[Mode]uint64{}
	}
	i, ok := b.modes[m]
	if !ok {
		i = uint64(len(b.part.Modes))
		b.modes[m] = i
		b.part.Modes = append(b.part.Modes, m)
	}
	return i
}

func (b *builder) xattrIndex(xs []ostree.Xattr) uint64 {
	if b.xkeys == nil {
		b.xkeys = map[string]uint64{}
	}
	key := fmt.Sprintf("%q", xs)
	i, ok := b.xkeys[key]
	if !ok {
		i = uint64(len(b.part.Xattrs))
		b.xkeys[key] = i
		b.part.Xattrs = append(b.part.Xattrs, xs)
	}
	return i
}

// flush closes the current part: compresses it and records its header.
func (b *builder) flush() error {
	if len(b.objs) == 0 {
		return nil
	}
	if b.part.Xattrs == nil {
		b.part.Xattrs = [][]ostree.Xattr{}
	}
	payload, err := b.part.Marshal()
	if err != nil {
		return fmt.Errorf("serializing part %d: %w", len(b.sb.Parts), err)
	}
	file, err := compressPart(payload)
	if err != nil {
		return err
	}
	i := len(b.sb.Parts)
	b.sb.Parts = append(b.sb.Parts, PartHeader{Checksum: sha256.Sum256(file), Size: uint64(len(file)),
		UncompressedSize: uint64(len(payload)), Objects: b.objs})
	if b.opts.Inline {
		b.sb.Metadata.Set(b.sb.Name.PartPath(i), gvariant.NewVariant("(yay)", gvariant.Tuple{file[0], file[1:]}))
	} else {
		b.files = append(b.files, file)
	}
	b.part, b.objs, b.modes, b.xkeys = Part{}, nil, nil, nil
	return nil
}

// write stores the parts, then the superblock.
func (b *builder) write() error {
	dir := filepath.Join(b.r.Path(), b.sb.Name.Dir())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	// A superblock left from an earlier generation names other parts:
	// remove it first so that no moment pairs it with the new parts.
	if err := os.Remove(filepath.Join(dir, "superblock")); err != nil && !os.IsNotExist(err) {
		return err
	}
	for i, f := range b.files {
		if err := fsutil.WriteFileAtomic(filepath.Join(b.r.Path(), b.sb.Name.PartPath(i)), f, 0o644); err != nil {
			return err
		}
	}
	data, err := b.sb.Marshal()
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(b.r.Path(), b.sb.Name.SuperblockPath()), data, 0o644)
}
