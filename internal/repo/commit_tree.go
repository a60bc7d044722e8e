package repo

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// A commit is built in three stages that overlap where they can:
//
//  1. The source (directory walk or tar stream) runs in the caller's
//     goroutine and records every entry in an in-memory tree (mdir/mfile):
//     directories with their dirmeta, files as slots for a checksum.
//  2. Each regular file and symlink goes to a bounded pool of workers that
//     hash it, check whether the object exists, and only then compress and
//     write it (so a warm commit reads but never rewrites). The slot gets
//     its checksum.
//  3. When the source is done and the workers have drained, dirtrees and
//     dirmetas are written bottom-up from the in-memory tree.
//
// Memory is bounded by the tree's names and checksums (about 150 bytes per
// entry) plus a fixed number of payload buffers: no file is ever held in
// memory beyond smallFileMax.

// smallFileMax is the largest payload read into memory in one piece;
// larger files are streamed (hashed once, then re-read, hashed again and
// written if the object is missing).
const smallFileMax = 512 << 10

// mdir is a directory of the tree being committed.
type mdir struct {
	meta     ostree.DirMeta
	children map[string]*mnode
}

// mnode is one entry of an mdir: a directory or a file.
type mnode struct {
	dir  *mdir
	file *mfile
}

// mfile is a regular file or symlink. A worker sets sum before it reports
// done; it is read only after all workers have finished.
type mfile struct {
	sum     ostree.Checksum
	symlink bool
	// link is the tree path of a tar hardlink's target, resolved when the
	// whole stream has been read (as libostree defers tar hardlinks).
	link string
}

func newMdir(meta ostree.DirMeta) *mdir {
	return &mdir{meta: meta, children: map[string]*mnode{}}
}

// treeBuilder holds the state of one WriteTree.
type treeBuilder struct {
	t     *Txn
	opts  TreeOptions
	ctx   context.Context
	stop  context.CancelFunc
	canon bool // canonical permissions
	noX   bool // drop xattrs
	root  *mdir

	jobs    chan contentJob
	workers sync.WaitGroup
	bufs    chan []byte // payload buffers for sources that read ahead (tar)
	claimed sync.Map    // ostree.Checksum → struct{}: content already stored or being stored

	errMu    sync.Mutex
	firstErr error

	found                                atomic.Int64 // files and symlinks seen, for progress
	files, symlinks, bytes               atomic.Int64
	contentWritten, contentReused, wrote atomic.Int64
}

func newTreeBuilder(ctx context.Context, t *Txn, opts TreeOptions) *treeBuilder {
	ctx, stop := context.WithCancel(ctx)
	n := opts.Workers
	if n <= 0 {
		n = max(4, 2*runtime.GOMAXPROCS(0))
	}
	b := &treeBuilder{
		t: t, opts: opts, ctx: ctx, stop: stop,
		canon: opts.CanonicalPermissions || t.r.mode == ModeBareUserOnly,
		noX:   opts.NoXattrs,
		jobs:  make(chan contentJob, 2*n),
		bufs:  make(chan []byte, n+2),
	}
	if off, _ := t.r.config.GetBool("core", "disable-xattrs", false); off {
		b.noX = true
	}
	for range cap(b.bufs) {
		b.bufs <- nil // allocated on first use
	}
	b.workers.Add(n)
	for range n {
		go func() {
			defer b.workers.Done()
			w := newWorker(b)
			for j := range b.jobs {
				if b.ctx.Err() != nil {
					j.discard(b)
					continue
				}
				if err := w.process(j); err != nil {
					b.fail(err)
				}
			}
		}()
	}
	return b
}

// fail records the first error and stops the source and the workers.
func (b *treeBuilder) fail(err error) {
	b.errMu.Lock()
	if b.firstErr == nil {
		b.firstErr = err
	}
	b.errMu.Unlock()
	b.stop()
}

// submit hands a file to the workers.
func (b *treeBuilder) submit(j contentJob) error {
	b.found.Add(1)
	if p := b.opts.Progress; p != nil {
		p.SetTotal(b.found.Load())
	}
	select {
	case b.jobs <- j:
		return nil
	case <-b.ctx.Done():
		j.discard(b)
		return b.ctx.Err()
	}
}

// getBuf returns a payload buffer of at least n bytes, waiting for one to
// be free: the number of buffers in flight is fixed.
func (b *treeBuilder) getBuf(n int) ([]byte, error) {
	select {
	case buf := <-b.bufs:
		if cap(buf) < n {
			buf = make([]byte, n, max(n, 64<<10))
		}
		return buf[:n], nil
	case <-b.ctx.Done():
		return nil, b.ctx.Err()
	}
}

func (b *treeBuilder) putBuf(buf []byte) { b.bufs <- buf }

// finish waits for the workers and returns the first error of the source
// (srcErr) or the workers.
func (b *treeBuilder) finish(srcErr error) error {
	close(b.jobs)
	b.workers.Wait()
	b.stop()
	b.errMu.Lock()
	defer b.errMu.Unlock()
	if b.firstErr != nil {
		return b.firstErr
	}
	return srcErr
}

// claim reports whether the caller should store the content object c:
// false if it exists or another file of this commit already stores it.
func (b *treeBuilder) claim(c ostree.Checksum) (bool, error) {
	if _, dup := b.claimed.LoadOrStore(c, struct{}{}); dup {
		b.contentReused.Add(1)
		return false, nil
	}
	ok, err := b.t.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile})
	if err != nil {
		return false, err
	}
	if ok {
		b.contentReused.Add(1)
	}
	return !ok, nil
}

// fileInfo applies the commit's modifiers (canonical permissions, owner
// override, no xattrs) to a file's metadata, as libostree's
// _ostree_repo_commit_modifier_apply does before hashing.
func (b *treeBuilder) fileInfo(fi ostree.FileInfo) ostree.FileInfo {
	if b.canon {
		fi.UID, fi.GID, fi.Xattrs = 0, 0, nil
		fi.Mode = ostree.CanonicalizeForBareUserOnly(fi.Mode)
	}
	if b.noX {
		fi.Xattrs = nil
	}
	if b.opts.OwnerUID != nil {
		fi.UID = *b.opts.OwnerUID
	}
	if b.opts.OwnerGID != nil {
		fi.GID = *b.opts.OwnerGID
	}
	return fi
}

// dirMeta is fileInfo for directories.
func (b *treeBuilder) dirMeta(uid, gid, mode uint32, xattrs []ostree.Xattr) ostree.DirMeta {
	fi := b.fileInfo(ostree.FileInfo{UID: uid, GID: gid, Mode: mode, Xattrs: xattrs})
	return ostree.DirMeta{UID: fi.UID, GID: fi.GID, Mode: fi.Mode, Xattrs: fi.Xattrs}
}

// checkName validates one file name component of the source.
func checkName(name string) error {
	if !utf8.ValidString(name) {
		return fmt.Errorf("invalid UTF-8 in file name %q: %w", name, errdefs.ErrInvalid)
	}
	if len(name) > 255 {
		return fmt.Errorf("file name longer than 255 bytes: %w", errdefs.ErrInvalid)
	}
	return ostree.ValidateFilename(name)
}

func joinPath(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// writeTree runs src through a treeBuilder and writes the dirtrees.
func writeTree(ctx context.Context, t *Txn, src TreeSource, opts TreeOptions, st *CommitStats) (tree, meta ostree.Checksum, err error) {
	b := newTreeBuilder(ctx, t, opts)
	err = b.finish(src.build(b.ctx, b))
	st.Files, st.Symlinks, st.Bytes = b.files.Load(), b.symlinks.Load(), b.bytes.Load()
	st.ContentWritten, st.ContentReused, st.BytesWritten = b.contentWritten.Load(), b.contentReused.Load(), b.wrote.Load()
	if err != nil {
		return tree, meta, err
	}
	if err := ctx.Err(); err != nil {
		return tree, meta, err
	}
	if b.root == nil {
		return tree, meta, fmt.Errorf("internal error: source produced no root directory")
	}
	if err := b.resolveLinks(); err != nil {
		return tree, meta, err
	}
	w := dirWriter{ctx: ctx, t: t, st: st, metas: map[string]ostree.Checksum{}}
	return w.write(b.root)
}

// resolveLinks gives every deferred hardlink its target's checksum. A
// hardlink may name another hardlink; chains are followed (a cycle is an
// error).
func (b *treeBuilder) resolveLinks() error {
	var resolve func(f *mfile, where string, depth int) error
	resolve = func(f *mfile, where string, depth int) error {
		if f.link == "" {
			return nil
		}
		if depth > 64 {
			return fmt.Errorf("hardlink %s: too many levels of hardlinks: %w", where, errdefs.ErrInvalid)
		}
		target, err := b.lookup(f.link)
		if err != nil {
			return fmt.Errorf("hardlink %s: target %w", where, err)
		}
		if target.dir != nil {
			return fmt.Errorf("hardlink %s: target %s is a directory: %w", where, f.link, errdefs.ErrInvalid)
		}
		if err := resolve(target.file, f.link, depth+1); err != nil {
			return err
		}
		f.sum, f.link = target.file.sum, ""
		return nil
	}
	var walk func(d *mdir, path string) error
	walk = func(d *mdir, path string) error {
		for name, n := range d.children {
			p := joinPath(path, name)
			if n.dir != nil {
				if err := walk(n.dir, p); err != nil {
					return err
				}
			} else if err := resolve(n.file, p, 0); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(b.root, "/")
}

// lookup finds a node by its normalized tree path ("a/b").
func (b *treeBuilder) lookup(p string) (*mnode, error) {
	d := b.root
	parts := strings.Split(p, "/")
	for i, name := range parts {
		n := d.children[name]
		if n == nil {
			return nil, fmt.Errorf("%s does not exist: %w", p, errdefs.ErrNotFound)
		}
		if i == len(parts)-1 {
			return n, nil
		}
		if n.dir == nil {
			return nil, fmt.Errorf("%s is not a directory: %w", strings.Join(parts[:i+1], "/"), errdefs.ErrInvalid)
		}
		d = n.dir
	}
	return nil, fmt.Errorf("empty hardlink target: %w", errdefs.ErrInvalid)
}

// dirWriter writes dirtrees and dirmetas bottom-up.
type dirWriter struct {
	ctx   context.Context
	t     *Txn
	st    *CommitStats
	metas map[string]ostree.Checksum // serialized dirmeta → checksum (most directories share one)
}

func (w *dirWriter) write(d *mdir) (tree, meta ostree.Checksum, err error) {
	if err := w.ctx.Err(); err != nil {
		return tree, meta, err
	}
	w.st.Dirs++
	dt := ostree.DirTree{}
	for name, n := range d.children {
		if n.dir == nil {
			dt.Files = append(dt.Files, ostree.TreeFile{Name: name, Checksum: n.file.sum})
			continue
		}
		ct, cm, err := w.write(n.dir)
		if err != nil {
			return tree, meta, err
		}
		dt.Dirs = append(dt.Dirs, ostree.TreeDir{Name: name, Tree: ct, Meta: cm})
	}
	d.children = nil // let the subtree go
	dt.Sort()
	tree, written, err := w.t.storeMeta(ostree.ObjectDirTree, dt.Marshal())
	if err != nil {
		return tree, meta, err
	}
	w.st.countMeta(written)
	mb := d.meta.Marshal()
	if c, ok := w.metas[string(mb)]; ok {
		return tree, c, nil
	}
	meta, written, err = w.t.storeMeta(ostree.ObjectDirMeta, mb)
	if err != nil {
		return tree, meta, err
	}
	w.st.countMeta(written)
	w.metas[string(mb)] = meta
	return tree, meta, nil
}
