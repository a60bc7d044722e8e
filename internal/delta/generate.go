package delta

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/bsdiff"
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
	// DefaultMaxBsdiffSize keeps a patch (as long as its file) within one
	// part of the default size.
	DefaultMaxBsdiffSize = 32_000_000
	// minSame is the share of a file's bytes that its patch must copy
	// unchanged from the old file for the patch to be used: below it the
	// patch compresses no better than the file.
	minSame = 0.5
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
	// MaxBsdiffSize: a regular file that replaces one at the same path
	// and is at most this long travels as a bsdiff patch against the old
	// file when most of its bytes are unchanged in place; 0 means
	// DefaultMaxBsdiffSize, negative turns patches off.
	MaxBsdiffSize int64
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
	if opts.MaxBsdiffSize == 0 {
		opts.MaxBsdiffSize = DefaultMaxBsdiffSize
	}
	opts.MaxBsdiffSize = min(opts.MaxBsdiffSize, opts.MaxChunkSize, MaxReadSourceSize)
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
	oldFiles := map[string]ostree.Checksum{} // path -> content object in from
	// Versionless path -> content object in from, the zero checksum when
	// several files share the key.
	oldSimilar := map[string]ostree.Checksum{}
	if !name.Scratch() {
		err := reachable(ctx, r, from, func(n ostree.ObjectName, p string) {
			have[n] = true
			if n.Type == ostree.ObjectFile {
				oldFiles[p] = n.Checksum
				keys := similarKeys(p)
				for i, k := range keys {
					if i > 0 && k == keys[0] {
						break
					}
					if _, dup := oldSimilar[k]; dup {
						oldSimilar[k] = ostree.Checksum{}
					} else {
						oldSimilar[k] = n.Checksum
					}
				}
			}
		})
		if err != nil {
			return nil, fmt.Errorf("generating delta %s: objects of %s: %w", name, from, err)
		}
	}
	type wanted struct {
		n    ostree.ObjectName
		path string
	}
	var want []wanted
	err = reachable(ctx, r, to, func(n ostree.ObjectName, p string) {
		if !have[n] {
			want = append(want, wanted{n, p})
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
	for _, w := range want {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		old, ok := oldFiles[w.path]
		for _, k := range similarKeys(w.path) {
			if ok {
				break
			}
			old = oldSimilar[k]
			ok = !old.IsZero()
		}
		if ok && w.n.Type == ostree.ObjectFile && opts.MaxBsdiffSize > 0 {
			done, err := b.addPatch(w.n, old)
			if err != nil {
				return nil, fmt.Errorf("generating delta %s: object %s: %w", name, w.n, err)
			}
			if done {
				continue
			}
		}
		if err := b.add(w.n); err != nil {
			return nil, fmt.Errorf("generating delta %s: object %s: %w", name, w.n, err)
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
// commit reaches, with the first path it is reached by, a directory before
// what it holds.
func reachable(ctx context.Context, r *repo.Repo, c ostree.Checksum, fn func(n ostree.ObjectName, path string)) error {
	cm, err := r.ReadCommit(c)
	if err != nil {
		return err
	}
	seen := map[ostree.ObjectName]bool{}
	visit := func(n ostree.ObjectName, p string) bool {
		if seen[n] {
			return false
		}
		seen[n] = true
		fn(n, p)
		return true
	}
	var dir func(p string, tree, meta ostree.Checksum) error
	dir = func(p string, tree, meta ostree.Checksum) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		visit(ostree.ObjectName{Checksum: meta, Type: ostree.ObjectDirMeta}, p)
		if !visit(ostree.ObjectName{Checksum: tree, Type: ostree.ObjectDirTree}, p) {
			return nil
		}
		t, err := r.ReadDirTree(tree)
		if err != nil {
			return err
		}
		for _, f := range t.Files {
			visit(ostree.ObjectName{Checksum: f.Checksum, Type: ostree.ObjectFile}, p+"/"+f.Name)
		}
		for _, d := range t.Dirs {
			if err := dir(p+"/"+d.Name, d.Tree, d.Meta); err != nil {
				return err
			}
		}
		return nil
	}
	return dir("", cm.RootTree, cm.RootMeta)
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

// readPayload reads a regular file's whole payload, at most max bytes.
func readPayload(r *repo.Repo, c ostree.Checksum, max int64) (*repo.Content, []byte, error) {
	obj, err := r.OpenContent(c)
	if err != nil {
		return nil, nil, err
	}
	defer obj.Close()
	if !obj.Info.IsRegular() || obj.Size > max {
		return obj, nil, nil
	}
	b := make([]byte, obj.Size)
	if _, err := io.ReadFull(obj, b); err != nil {
		return nil, nil, fmt.Errorf("reading payload of %s: %w", c, err)
	}
	return obj, b, nil
}

// similarKeys returns the keys under which a file's old version is looked
// up when no old file has its path: the path with every run of digits in
// its directories replaced by one '#', then also in its name. A file whose
// path changed only in version numbers, as a kernel and its modules do
// from one kernel release to the next (usr/lib/modules/6.1.0-17-amd64/
// to 6.1.0-18-amd64/), is patched against its old self; the directory
// key comes first because names such as mt76x0e.ko and mt76x2e.ko differ
// only in digits. A key that several old files share is not used
// (Generate records it as the zero checksum).
func similarKeys(p string) [2]string {
	dir, name := path.Split(p)
	d := versionless(dir)
	return [2]string{d + name, d + versionless(name)}
}

// versionless returns s with every run of digits replaced by one '#'.
func versionless(p string) string {
	var b strings.Builder
	digits := false
	for _, c := range []byte(p) {
		d := c >= '0' && c <= '9'
		if !d {
			b.WriteByte(c)
		} else if !digits {
			b.WriteByte('#')
		}
		digits = d
	}
	return b.String()
}

// addPatch carries content object n as a bsdiff patch against old, the
// file at the same path in the from commit (or at a path that differs
// only in version numbers), when both are regular files within
// MaxBsdiffSize and the patch copies most of n's bytes from old. It
// reports whether it did.
func (b *builder) addPatch(n ostree.ObjectName, old ostree.Checksum) (bool, error) {
	newObj, newData, err := readPayload(b.r, n.Checksum, b.opts.MaxBsdiffSize)
	if err != nil || newData == nil {
		return false, err
	}
	_, oldData, err := readPayload(b.r, old, b.opts.MaxBsdiffSize)
	if err != nil || oldData == nil {
		return false, err
	}
	patch, st := bsdiff.Diff(oldData, newData)
	if float64(st.Same) < minSame*float64(len(newData)) {
		return false, nil
	}
	if err := b.room(int64(len(patch)) + 32); err != nil {
		return false, err
	}
	mi := b.modeIndex(Mode{UID: newObj.Info.UID, GID: newObj.Info.GID, Mode: newObj.Info.Mode})
	xi := b.xattrIndex(newObj.Info.Xattrs)
	src := len(b.part.Raw)
	b.part.Raw = append(b.part.Raw, old[:]...)
	off := len(b.part.Raw)
	b.part.Raw = append(b.part.Raw, patch...)
	// The sequence libostree's generator writes for a patched file.
	ops := appendVarint([]byte{opSetReadSource}, uint64(src))
	ops = append(ops, opOpen)
	for _, x := range []uint64{mi, xi, uint64(len(newData))} {
		ops = appendVarint(ops, x)
	}
	ops = append(ops, opBspatch)
	ops = appendVarint(appendVarint(ops, uint64(off)), uint64(len(patch)))
	ops = append(ops, opUnsetReadSource, opClose)
	b.part.Ops = append(b.part.Ops, ops...)
	b.objs = append(b.objs, n)
	return true, nil
}
