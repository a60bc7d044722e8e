package delta

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
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
	// Patches are computed by a pool of workers ahead of the builder,
	// which takes them in order: the parts do not depend on the
	// number of workers.
	jobs := make([]patchJob, len(want))
	for i, w := range want {
		old, ok := oldFiles[w.path]
		for _, k := range similarKeys(w.path) {
			if ok {
				break
			}
			old = oldSimilar[k]
			ok = !old.IsZero()
		}
		jobs[i] = patchJob{n: w.n, old: old, use: ok && w.n.Type == ostree.ObjectFile && opts.MaxBsdiffSize > 0}
	}
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := diffAll(pctx, r, jobs, opts.MaxBsdiffSize)
	for i, w := range want {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if jobs[i].use {
			res := <-results[i]
			if res.err != nil {
				return nil, fmt.Errorf("generating delta %s: object %s: %w", name, w.n, res.err)
			}
			if res.patch != nil {
				if err := b.addPatch(w.n, jobs[i].old, res); err != nil {
					return nil, fmt.Errorf("generating delta %s: object %s: %w", name, w.n, err)
				}
				continue
			}
		}
		if err := b.add(w.n); err != nil {
			return nil, fmt.Errorf("generating delta %s: object %s: %w", name, w.n, err)
		}
	}
	err = b.flush()
	if ferr := b.finish(); err == nil {
		err = ferr
	}
	if err != nil {
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
	// Parts being compressed, by index, and a slot per compression
	// running.
	pending []*compressed
	slots   chan struct{}
}

// compressed is a part file being made in the background: done is closed
// when file or err is set.
type compressed struct {
	done chan struct{}
	file []byte
	err  error
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
	// The payload holds the part's bytes now: drop the part before
	// waiting for a compression slot.
	b.sb.Parts = append(b.sb.Parts, PartHeader{UncompressedSize: uint64(len(payload)), Objects: b.objs})
	b.part, b.objs, b.modes, b.xkeys = Part{}, nil, nil, nil
	// The part is compressed in the background while the next one is
	// built, by at most GOMAXPROCS (at least 2) compressions at once.
	if b.slots == nil {
		b.slots = make(chan struct{}, max(runtime.GOMAXPROCS(0), 2))
	}
	c := &compressed{done: make(chan struct{})}
	b.slots <- struct{}{}
	go func() {
		defer func() { <-b.slots }()
		c.file, c.err = compressPart(payload)
		close(c.done)
	}()
	b.pending = append(b.pending, c)
	return nil
}

// finish waits for the parts' compression and records their files.
func (b *builder) finish() error {
	var failed error
	for i, c := range b.pending {
		<-c.done
		if c.err != nil {
			failed = cmp.Or(failed, c.err)
			continue
		}
		h := &b.sb.Parts[i]
		h.Checksum, h.Size = sha256.Sum256(c.file), uint64(len(c.file))
		if b.opts.Inline {
			b.sb.Metadata.Set(b.sb.Name.PartPath(i), gvariant.NewVariant("(yay)", gvariant.Tuple{c.file[0], c.file[1:]}))
		} else {
			b.files = append(b.files, c.file)
		}
	}
	b.pending = nil
	return failed
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

// readPayload reads a regular file's whole payload, at most max bytes,
// into memory that release frees (see mapBytes); release is never nil.
func readPayload(r *repo.Repo, c ostree.Checksum, max int64) (obj *repo.Content, data []byte, release func(), err error) {
	obj, err = r.OpenContent(c)
	if err != nil {
		return nil, nil, func() {}, err
	}
	defer obj.Close()
	if !obj.Info.IsRegular() || obj.Size > max {
		return obj, nil, func() {}, nil
	}
	data, release = mapBytes(int(obj.Size))
	if _, err := io.ReadFull(obj, data); err != nil {
		release()
		return nil, nil, func() {}, fmt.Errorf("reading payload of %s: %w", c, err)
	}
	return obj, data, release, nil
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

// patchJob is an object Generate may carry as a bsdiff patch against old.
type patchJob struct {
	n   ostree.ObjectName
	old ostree.Checksum
	use bool // a patch is to be tried
}

// patchResult is a computed patch, or none (patch nil) when the object
// is to be carried whole.
type patchResult struct {
	patch []byte
	mode  Mode
	xs    []ostree.Xattr
	size  int
	err   error
}

// diffAll computes the patches of the jobs that use one, by GOMAXPROCS
// workers (at least 2), each job's result on its own channel. A job is
// started only while fewer than twice that many results wait to be taken,
// so that memory stays bounded: a worker holds the two files and the
// old one's suffix array (about 10 bytes per byte of the old file), a
// waiting result its patch.
func diffAll(ctx context.Context, r *repo.Repo, jobs []patchJob, maxSize int64) []chan patchResult {
	workers := max(runtime.GOMAXPROCS(0), 2)
	out := make([]chan patchResult, len(jobs))
	for i := range out {
		out[i] = make(chan patchResult, 1)
	}
	ahead := make(chan struct{}, 2*workers)
	next := make(chan int)
	go func() {
		defer close(next)
		for i, j := range jobs {
			if !j.use {
				continue
			}
			select {
			case ahead <- struct{}{}:
			case <-ctx.Done():
				return
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	for range workers {
		go func() {
			for i := range next {
				res := diffOne(r, jobs[i].n.Checksum, jobs[i].old, maxSize)
				out[i] <- res
				<-ahead
			}
		}()
	}
	return out
}

// diffOne computes the patch that makes content object n of the file old,
// when both are regular files within max bytes and the patch copies most
// of n's bytes from old. Both payloads are freed when it returns (they may
// be mappings, see mapBytes): nothing it returns refers to them.
func diffOne(r *repo.Repo, n, old ostree.Checksum, max int64) patchResult {
	newObj, newData, releaseNew, err := readPayload(r, n, max)
	defer releaseNew()
	if err != nil || newData == nil {
		return patchResult{err: err}
	}
	_, oldData, releaseOld, err := readPayload(r, old, max)
	defer releaseOld()
	if err != nil || oldData == nil {
		return patchResult{err: err}
	}
	if !shared(oldData, newData) {
		return patchResult{}
	}
	patch, st := bsdiff.Diff(oldData, newData)
	if float64(st.Same) < minSame*float64(len(newData)) {
		return patchResult{}
	}
	return patchResult{patch: patch, size: len(newData), xs: newObj.Info.Xattrs,
		mode: Mode{UID: newObj.Info.UID, GID: newObj.Info.GID, Mode: newObj.Info.Mode}}
}

// Probe of shared: files of at least probeMin bytes are sampled at
// probeBlocks evenly spaced blocks of probeLen bytes.
const (
	probeMin    = 1 << 20
	probeBlocks = 32
	probeLen    = 32
	probeNear   = 256 << 10
)

// shared reports whether new may share enough content with old for a
// patch to pay: a large new file whose sampled blocks are mostly absent
// from old (a compressed kernel image, whose every byte changes with any
// change of its contents) is not searched, which would cost a suffix sort
// and a search of the whole file for a patch no smaller than the file.
// A patch is used only when it copies half of new unchanged, so a file
// of which fewer than a quarter of the blocks occur in old is taken as
// not shared.
func shared(old, new []byte) bool {
	if len(new) < probeMin {
		return true
	}
	need := (probeBlocks + 3) / 4
	found := 0
	step := len(new) / probeBlocks
	for i := range probeBlocks {
		if found >= need {
			return true
		}
		if found+probeBlocks-i < need {
			return false
		}
		at := i*step + step/3
		block := new[at : at+probeLen]
		// Content mostly stays near its place: look there first.
		near := old[min(max(at-probeNear, 0), len(old)):min(at+probeNear+probeLen, len(old))]
		if bytes.Contains(near, block) || bytes.Contains(old, block) {
			found++
		}
	}
	return found >= need
}

// addPatch carries content object n as the bsdiff patch res against old,
// the file at the same path in the from commit (or at a path that differs
// only in version numbers).
func (b *builder) addPatch(n ostree.ObjectName, old ostree.Checksum, res patchResult) error {
	patch := res.patch
	if err := b.room(int64(len(patch)) + 32); err != nil {
		return err
	}
	mi := b.modeIndex(res.mode)
	xi := b.xattrIndex(res.xs)
	src := len(b.part.Raw)
	b.part.Raw = append(b.part.Raw, old[:]...)
	off := len(b.part.Raw)
	b.part.Raw = append(b.part.Raw, patch...)
	// The sequence libostree's generator writes for a patched file.
	ops := appendVarint([]byte{opSetReadSource}, uint64(src))
	ops = append(ops, opOpen)
	for _, x := range []uint64{mi, xi, uint64(res.size)} {
		ops = appendVarint(ops, x)
	}
	ops = append(ops, opBspatch)
	ops = appendVarint(appendVarint(ops, uint64(off)), uint64(len(patch)))
	ops = append(ops, opUnsetReadSource, opClose)
	b.part.Ops = append(b.part.Ops, ops...)
	b.objs = append(b.objs, n)
	return nil
}
