package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// CheckoutOptions tune Checkout. The zero value checks out the whole tree
// with ownership and xattrs, verifying every object it uses.
type CheckoutOptions struct {
	// UserMode is `ostree checkout -U`: files and directories belong to
	// the caller (no chown), xattrs are not applied, and regular files
	// lose setuid/setgid and become readable by their owner, as ostree
	// 2022.7 does. It is forced for bare-user-only repositories,
	// which store no ownership, as libostree forces it.
	UserMode bool
	// Subpath checks out only this path of the tree ("" or "/": all). A
	// file is checked out into a new directory DEST, as ostree does.
	Subpath string
	// NoVerifyLinks skips checking content objects that are hardlinked
	// into the checkout. Copied objects are always verified as they are
	// copied; metadata objects always. By default a hardlinked object is
	// hashed unless its stamp shows it unchanged since it was verified
	// (see Checkout).
	NoVerifyLinks bool
	// Progress, if set, is told the number of entries to check out as the
	// tree is read (SetTotal, growing) and each entry done (Add). Its
	// methods may be called from several goroutines at once.
	Progress interface {
		SetTotal(n int64)
		Add(n int64)
	}
	// Workers bounds the goroutines that write files; 0 means GOMAXPROCS.
	Workers int
	// Donor, if set, is an earlier checkout whose directories Checkout
	// may take instead of making them again (see CheckoutDonor).
	Donor *CheckoutDonor
}

// CheckoutDonor is a finished checkout of Commit at Dir, made by Checkout
// of the same repository in the same mode, on dest's filesystem, that
// nothing has written to since (the read-only lower layer of an overlay
// is such a checkout). Where the new tree has a directory whose dirtree
// and dirmeta are those of the donor's directory at the same path, the
// checkout renames the donor's directory into place instead of making
// it: that directory was made from the same objects, so the result is
// the checkout that making it would give. A rename that fails (another
// filesystem, permissions) falls back to making the directory. Dir is
// left with what was not taken; the caller removes it.
type CheckoutDonor struct {
	Dir    string
	Commit ostree.Checksum
}

// CheckoutStats describes a finished checkout.
type CheckoutStats struct {
	Commit     ostree.Checksum
	Dirs       int64 // directories created, the root included
	Files      int64 // regular files and symlinks
	Hardlinked int64 // files hardlinked from the repository
	Copied     int64 // files written (or symlinks created) from object data
	Verified   int64 // distinct hardlinked objects hashed
	Stamped    int64 // distinct hardlinked objects trusted by their verification stamp
	Taken      int64 // directories taken whole from the donor (their contents not counted above)
}

// Checkout materializes the tree of rev (a ref or commit checksum, see
// ResolveRev) at dest. dest must not exist (its parent must) or be an
// empty directory; on failure everything Checkout created under dest is
// removed again.
//
// Content objects are hardlinked from the repository when the object file
// already carries exactly the metadata the checkout needs: bare
// repositories in the default mode, bare-user and bare-user-only
// repositories in user mode (regular files whose on-disk permission bits
// are the wanted ones). Everything else is copied: archive objects are
// decompressed, symlinks are created. A hardlink that fails with EXDEV,
// EMLINK or EPERM falls back to a copy.
//
// Directories are created mode 0700 with their xattrs, filled, then given
// their owner, mode and mtime 0 (OSTREE_TIMESTAMP), so that 0500 and 0000
// directories can be checked out. Copied files keep the time they were
// written, like `ostree checkout` (only hardlinked objects carry mtime 0).
//
// Every metadata object read is verified and strictly parsed; every
// content object copied is hashed as it is copied. A regular-file object
// that is hardlinked is hashed once, unless NoVerifyLinks or its
// verification stamp is intact: the mtime 0 that a bare repository gives
// an object when it stores it, after hashing it. Any write to the object,
// through a hardlink too, moves its mtime to the time of the write, and
// only the object's owner (who can change it anyway) can set it back.
// docs/checkout-verification.md describes the guarantee. A missing object is
// errdefs.ErrNotFound and a damaged one errdefs.ErrCorrupt, both naming
// the object.
//
// Entries are created relative to directory file descriptors that
// Checkout itself opened with O_NOFOLLOW, and dirtree names are validated
// (ostree.ParseDirTree), so nothing is ever written outside dest.
//
// Checkout holds the repository lock shared from start to end, as a
// transaction does: Prune takes it exclusively, so it never deletes an
// object a checkout is about to read. Each waits for the other for up to
// the lock timeout (30 s), then fails with errdefs.ErrConflict.
func Checkout(ctx context.Context, r *Repo, rev, dest string, opts CheckoutOptions) (CheckoutStats, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return CheckoutStats{}, fmt.Errorf("checking out %s: %w", rev, err)
	}
	defer unlock()
	commit, err := r.ResolveRev(rev)
	if err != nil {
		return CheckoutStats{}, fmt.Errorf("checking out %s: %w", rev, err)
	}
	start, err := Lookup(r, commit, opts.Subpath)
	if err != nil {
		return CheckoutStats{}, fmt.Errorf("checking out %s: %w", rev, err)
	}
	if r.mode == ModeBareUserOnly {
		opts.UserMode = true
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	c := &checkout{r: r, opts: opts, cancel: cancel, objects: map[ostree.Checksum]*objectState{},
		dirMetas: map[ostree.Checksum]*ostree.DirMeta{}, walkSem: make(chan struct{}, opts.Workers)}
	c.linkable = (r.mode == ModeBare && !opts.UserMode) ||
		((r.mode == ModeBareUser || r.mode == ModeBareUserOnly) && opts.UserMode)

	root, existed, err := createCheckoutRoot(dest)
	if err != nil {
		return CheckoutStats{}, fmt.Errorf("checking out %s to %s: %w", rev, dest, err)
	}
	err = c.run(ctx, root, start)
	if err != nil {
		if rmErr := removeCheckout(dest, existed); rmErr != nil {
			err = errors.Join(err, fmt.Errorf("removing incomplete checkout %s: %w", dest, rmErr))
		}
		return CheckoutStats{}, fmt.Errorf("checking out %s to %s: %w", rev, dest, err)
	}
	return c.stats.snapshot(commit), nil
}

// createCheckoutRoot creates dest (mode 0700 until it is finished) or
// accepts it if it is an empty directory, and returns an O_NOFOLLOW
// descriptor of it.
func createCheckoutRoot(dest string) (fd int, existed bool, err error) {
	parent, base := filepath.Dir(dest), filepath.Base(dest)
	if base == "/" || base == "." || base == ".." {
		return -1, false, fmt.Errorf("destination %q is not a new directory name: %w", dest, errdefs.ErrInvalid)
	}
	pfd, err := unix.Open(parent, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false, fmt.Errorf("opening parent directory %s: %w", parent, err)
	}
	defer unix.Close(pfd)
	err = unix.Mkdirat(pfd, base, 0o700)
	existed = errors.Is(err, unix.EEXIST)
	if err != nil && !existed {
		return -1, false, fmt.Errorf("creating %s: %w", dest, err)
	}
	fd, err = unix.Openat(pfd, base, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		if existed {
			return -1, false, fmt.Errorf("destination %s exists and is not a directory: %w", dest, errdefs.ErrAlreadyExists)
		}
		return -1, false, fmt.Errorf("opening %s: %w", dest, err)
	}
	if existed {
		f := os.NewFile(uintptr(fd), dest)
		names, err := f.Readdirnames(1)
		if len(names) > 0 || (err != nil && !errors.Is(err, io.EOF)) {
			f.Close()
			if err == nil {
				err = errdefs.ErrAlreadyExists
			}
			return -1, false, fmt.Errorf("destination %s exists and is not empty: %w", dest, err)
		}
		// Readdirnames consumed the descriptor's position only; dup it so
		// closing f does not close the descriptor handed out.
		nfd, err := unix.Dup(fd)
		f.Close()
		if err != nil {
			return -1, false, err
		}
		fd = nfd
	}
	return fd, existed, nil
}

// removeCheckout removes what a failed checkout created: dest itself, or
// only its contents when it existed before. Directories may already have
// their final, read-only modes, so they are made writable first.
func removeCheckout(dest string, keepRoot bool) error {
	filepath.WalkDir(dest, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && !(keepRoot && p == dest) {
			os.Chmod(p, 0o700)
		}
		return nil
	})
	if !keepRoot {
		return os.RemoveAll(dest)
	}
	ents, err := os.ReadDir(dest)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		errs = append(errs, os.RemoveAll(filepath.Join(dest, e.Name())))
	}
	return errors.Join(errs...)
}

// checkout is the state of one Checkout call.
type checkout struct {
	r        *Repo
	opts     CheckoutOptions
	cancel   context.CancelFunc
	linkable bool        // the repository mode and checkout mode allow hardlinks at all
	noLink   atomic.Bool // a hardlink failed with EXDEV: copy everything from now on

	errOnce sync.Once
	err     error
	failed  atomic.Bool

	mu            sync.Mutex // guards objects, progressTotal and dirMetas
	objects       map[ostree.Checksum]*objectState
	progressTotal int64
	dirMetas      map[ostree.Checksum]*ostree.DirMeta

	// The tree walk runs subdirectories in goroutines of their own while
	// walkSem has room: reading dirtrees and creating directories is most
	// of a hardlink checkout's work beside the links.
	walkSem chan struct{}
	walkWG  sync.WaitGroup

	stats checkoutCounters
}

type checkoutCounters struct {
	dirs, files, linked, copied, verified, stamped, taken atomic.Int64
}

func (s *checkoutCounters) snapshot(commit ostree.Checksum) CheckoutStats {
	return CheckoutStats{Commit: commit, Dirs: s.dirs.Load(), Files: s.files.Load(),
		Hardlinked: s.linked.Load(), Copied: s.copied.Load(), Verified: s.verified.Load(),
		Stamped: s.stamped.Load(), Taken: s.taken.Load()}
}

// fail records the first error and stops the checkout.
func (c *checkout) fail(err error) {
	c.errOnce.Do(func() {
		c.err = err
		c.failed.Store(true)
		c.cancel()
	})
}

// coDir is a directory being checked out. It stays open until everything
// below it is done; then it gets its final metadata and is closed, and
// its parent is told.
type coDir struct {
	fd      int
	path    string
	meta    *ostree.DirMeta
	parent  *coDir
	pending atomic.Int32 // the tree walk's own hold + file batches + subdirectories not finished
	// The donor's directory at the same path, if it has one: an open
	// descriptor (-1: none) and its dirtree.
	donorFD   int
	donorTree ostree.Checksum
}

// fileJob is a batch of files of one directory for a worker.
type fileJob struct {
	dir   *coDir
	files []ostree.TreeFile
}

const filesPerJob = 64

func (c *checkout) run(ctx context.Context, rootFD int, start *WalkEntry) error {
	jobs := make(chan fileJob, 4*c.opts.Workers)
	var wg sync.WaitGroup
	for i := 0; i < c.opts.Workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				c.doFiles(ctx, j)
				c.release(j.dir)
			}
		}()
	}
	if start.Kind == EntryDir {
		meta, err := c.dirMeta(start.Meta)
		if err != nil {
			c.fail(err)
			unix.Close(rootFD)
		} else {
			root := &coDir{fd: rootFD, path: start.Path, meta: meta, donorFD: -1}
			if c.opts.Donor != nil {
				c.openDonor(root)
			}
			c.stats.dirs.Add(1)
			c.total(1)
			c.done(1)
			c.walkDir(ctx, root, start.Checksum, jobs)
			c.walkWG.Wait()
		}
	} else {
		// A single file: ostree puts it into the new directory DEST.
		meta := &ostree.DirMeta{UID: uint32(os.Geteuid()), GID: uint32(os.Getegid()), Mode: ostree.ModeDir | 0o755}
		root := &coDir{fd: rootFD, path: "/", meta: meta, donorFD: -1}
		root.pending.Store(2)
		c.total(1)
		jobs <- fileJob{dir: root, files: []ostree.TreeFile{{Name: start.Name(), Checksum: start.Checksum}}}
		c.release(root)
	}
	close(jobs)
	wg.Wait()
	if c.err == nil {
		// Canceled by the caller: the walk and the workers stopped early.
		return ctx.Err()
	}
	return c.err
}

func (c *checkout) total(n int64) {
	if c.opts.Progress == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.progressTotal += n
	c.opts.Progress.SetTotal(c.progressTotal)
}

func (c *checkout) done(n int64) {
	if c.opts.Progress != nil {
		c.opts.Progress.Add(n)
	}
}

// walkDir fills directory d (already created and open) from dirtree
// tree: it applies d's xattrs, queues its files in batches, creates and
// walks its subdirectories, then drops its own hold on d.
func (c *checkout) walkDir(ctx context.Context, d *coDir, tree ostree.Checksum, jobs chan<- fileJob) {
	d.pending.Add(1)
	defer c.release(d)
	if ctx.Err() != nil {
		return
	}
	t, err := c.r.readDirTreeChecked(tree)
	if err != nil {
		c.fail(fmt.Errorf("directory %s: %w", d.path, err))
		return
	}
	c.total(int64(len(t.Files) + len(t.Dirs)))
	if !c.opts.UserMode {
		for _, x := range d.meta.Xattrs {
			if err := unix.Fsetxattr(d.fd, x.Name, x.Value, 0); err != nil {
				c.fail(fmt.Errorf("setting xattr %s of directory %s: %w", x.Name, d.path, err))
				return
			}
		}
	}
	for i := 0; i < len(t.Files); i += filesPerJob {
		batch := t.Files[i:min(i+filesPerJob, len(t.Files))]
		d.pending.Add(1)
		select {
		case jobs <- fileJob{dir: d, files: batch}:
		case <-ctx.Done():
			d.pending.Add(-1)
			return
		}
	}
	donated := c.donorDirs(d)
	for _, sub := range t.Dirs {
		if ctx.Err() != nil {
			return
		}
		p := joinTreePath(d.path, sub.Name)
		dsub, inDonor := donated[sub.Name]
		if inDonor && dsub.Tree == sub.Tree && dsub.Meta == sub.Meta &&
			unix.Renameat(d.donorFD, sub.Name, d.fd, sub.Name) == nil {
			c.stats.taken.Add(1)
			c.done(1)
			continue
		}
		meta, err := c.dirMeta(sub.Meta)
		if err != nil {
			c.fail(fmt.Errorf("directory %s: %w", p, err))
			return
		}
		if err := unix.Mkdirat(d.fd, sub.Name, 0o700); err != nil {
			c.fail(fmt.Errorf("creating directory %s: %w", p, err))
			return
		}
		fd, err := unix.Openat(d.fd, sub.Name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			c.fail(fmt.Errorf("opening directory %s: %w", p, err))
			return
		}
		c.stats.dirs.Add(1)
		c.done(1)
		d.pending.Add(1)
		child := &coDir{fd: fd, path: p, meta: meta, parent: d, donorFD: -1}
		if inDonor {
			if dfd, err := unix.Openat(d.donorFD, sub.Name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0); err == nil {
				child.donorFD, child.donorTree = dfd, dsub.Tree
			}
		}
		select {
		case c.walkSem <- struct{}{}:
			c.walkWG.Add(1)
			go func() {
				defer func() { <-c.walkSem; c.walkWG.Done() }()
				c.walkDir(ctx, child, sub.Tree, jobs)
			}()
		default:
			c.walkDir(ctx, child, sub.Tree, jobs)
		}
	}
}

// dirMeta returns a verified dirmeta; trees share few of them, so they
// are cached.
func (c *checkout) dirMeta(sum ostree.Checksum) (*ostree.DirMeta, error) {
	c.mu.Lock()
	m, ok := c.dirMetas[sum]
	c.mu.Unlock()
	if ok {
		return m, nil
	}
	dm, err := c.r.readDirMetaChecked(sum)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.dirMetas[sum] = &dm
	c.mu.Unlock()
	return &dm, nil
}

// release drops one hold on d. The last one finishes d (owner, mode,
// mtime), closes it and releases its parent in turn.
func (c *checkout) release(d *coDir) {
	for d != nil && d.pending.Add(-1) == 0 {
		if !c.failed.Load() {
			if err := c.finishDir(d); err != nil {
				c.fail(err)
			}
		}
		unix.Close(d.fd)
		if d.donorFD >= 0 {
			unix.Close(d.donorFD)
		}
		d = d.parent
	}
}

// finishDir gives a filled directory its final metadata, as libostree's
// checkout_tree_at_recurse does: chown (not in user mode), chmod (masked
// to 0775 for bare-user-only), mtime 0 with atime untouched.
func (c *checkout) finishDir(d *coDir) error {
	if !c.opts.UserMode {
		if err := unix.Fchown(d.fd, int(d.meta.UID), int(d.meta.GID)); err != nil {
			return fmt.Errorf("setting owner of directory %s: %w", d.path, err)
		}
	}
	mode := d.meta.Mode & ostree.ModePermMask
	if c.r.mode == ModeBareUserOnly {
		mode &= 0o775
	}
	if err := unix.Fchmod(d.fd, mode); err != nil {
		return fmt.Errorf("setting mode of directory %s: %w", d.path, err)
	}
	if err := futimensMtime0(d.fd); err != nil {
		return fmt.Errorf("setting mtime of directory %s: %w", d.path, err)
	}
	return nil
}

// futimensMtime0 sets a descriptor's mtime to 0 and leaves its atime,
// futimens(fd, {{0, UTIME_OMIT}, {0, 0}}) as libostree calls it.
func futimensMtime0(fd int) error {
	ts := [2]unix.Timespec{{Nsec: unix.UTIME_OMIT}, {}}
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return errno
	}
	return nil
}

// openDonor opens the donor's root for the checkout's root; a donor that
// cannot be opened or read is not used.
func (c *checkout) openDonor(root *coDir) {
	if c.opts.Subpath != "" && c.opts.Subpath != "/" {
		return
	}
	dc, err := c.r.ReadCommit(c.opts.Donor.Commit)
	if err != nil {
		return
	}
	fd, err := unix.Open(c.opts.Donor.Dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	root.donorFD, root.donorTree = fd, dc.RootTree
}

// donorDirs returns the subdirectories of the donor's directory at d's
// path, by name; none when the donor has no such directory or its dirtree
// cannot be read.
func (c *checkout) donorDirs(d *coDir) map[string]ostree.TreeDir {
	if d.donorFD < 0 {
		return nil
	}
	t, err := c.r.readDirTreeChecked(d.donorTree)
	if err != nil {
		return nil
	}
	out := make(map[string]ostree.TreeDir, len(t.Dirs))
	for _, sub := range t.Dirs {
		out[sub.Name] = sub
	}
	return out
}
