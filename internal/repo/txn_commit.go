package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/strata-os/strata/internal/fsutil"
	"golang.org/x/sys/unix"
)

// Commit makes the staged objects durable and visible, then applies the
// ref updates: the transaction's commit point.
//
// The durability guarantee is libostree's (ostree_repo_commit_transaction,
// with fsync on): once Commit returns, the objects and refs survive a
// power failure, and at no moment can a crash leave a ref, or a visible
// commit object, that names an object whose data could be lost. In order:
//
//  1. one syncfs of the repository's filesystem makes every staged
//     object's data and metadata durable before any of them has a name
//     under objects/ (an object is only ever visible complete). The
//     syncs the transaction started while staging (see writeback) only
//     leave it less to write; it waits for them, and an error that one
//     of them reported fails the commit here;
//  2. the objects are renamed into objects/XX, each rename relative to
//     the two directories' descriptors (no path walk per object), in one
//     goroutine: renames between directories are serialized by the
//     kernel (the filesystem's rename lock), so more only contend. A
//     staged XX directory without commit objects whose objects/XX does
//     not exist yet is renamed whole;
//  3. every objects/XX directory that received one, and objects/, is
//     fsynced, in parallel: on a journalling filesystem these wait for
//     the same journal commit rather than one commit each;
//  4. only then are commit objects renamed into place and their
//     directories fsynced, so a visible commit's tree is durable;
//  5. refs are written last, each atomically.
//
// Without fsync (Repo.SetFsync(false), core.fsync=false) the order is the
// same and the syncs are skipped.
func (t *Txn) Commit() error {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return fmt.Errorf("internal error: transaction already finished")
	}
	t.finished = true
	t.mu.Unlock()
	defer t.release()
	t.r.commitStep("staged")
	if err := t.stopWriteback(); err != nil {
		return err
	}
	if t.r.fsync {
		// On the descriptor opened at Begin: the kernel reports a
		// write-back error of the filesystem to every descriptor opened
		// before it, so one that happened during the transaction is not
		// missed.
		if err := syncfs(t.dirFD); err != nil {
			return fmt.Errorf("syncfs %s: %w", t.dir, err)
		}
	}
	t.r.commitStep("synced")
	objects := filepath.Join(t.r.path, "objects")
	subs, err := os.ReadDir(t.dir)
	if err != nil {
		return fmt.Errorf("reading staging directory: %w", err)
	}
	var dirs []string
	for _, s := range subs {
		if s.IsDir() && len(s.Name()) == 2 {
			dirs = append(dirs, s.Name())
		}
	}
	m := &mover{t: t, objects: objects}
	if err := m.moveAll(dirs); err != nil {
		return err
	}
	if err := t.syncDirs(append(m.touched, objects)); err != nil {
		return err
	}
	if len(m.commits) > 0 {
		var cdirs []string
		for _, c := range m.commits {
			from, to := filepath.Join(t.dir, c.sub, c.name), filepath.Join(objects, c.sub, c.name)
			if err := m.move(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE); err != nil {
				return err
			}
			cdirs = append(cdirs, filepath.Join(objects, c.sub))
		}
		if err := t.syncDirs(cdirs); err != nil {
			return err
		}
	}
	t.r.commitStep("objects-visible")
	for _, u := range t.refs {
		var err error
		if u.delete {
			err = t.r.deleteRef(u.remote, u.name)
		} else {
			err = t.r.writeRef(u.remote, u.name, u.checksum)
		}
		if err != nil {
			return err
		}
	}
	t.r.commitStep("refs-written")
	os.RemoveAll(t.dir)
	return nil
}

// syncDirs fsyncs directories in parallel (nothing without fsync).
func (t *Txn) syncDirs(dirs []string) error {
	if !t.r.fsync || len(dirs) == 0 {
		return nil
	}
	return parallel(len(dirs), func(i int) error { return fsutil.FsyncDir(dirs[i]) })
}

// mover renames the staged objects of a transaction into objects/.
type mover struct {
	t       *Txn
	objects string

	touched []string // objects/XX directories that received objects
	commits []stagedName
}

type stagedName struct{ sub, name string }

// moveAll moves every object of the staging subdirectories dirs (two hex
// digits each) into place, except commit objects, which it collects.
func (m *mover) moveAll(dirs []string) error {
	for _, d := range dirs {
		if err := m.moveDir(d); err != nil {
			return err
		}
	}
	return nil
}

func (m *mover) moveDir(sub string) error {
	dst := filepath.Join(m.objects, sub)
	srcPath := filepath.Join(m.t.dir, sub)
	src, err := os.Open(srcPath)
	if err != nil {
		return fmt.Errorf("reading staging directory: %w", err)
	}
	defer src.Close()
	names, err := src.Readdirnames(-1)
	if err != nil {
		return fmt.Errorf("reading staging directory %s: %w", src.Name(), err)
	}
	if !slices.ContainsFunc(names, isCommitName) {
		// objects/ has no such directory yet (a first pull or commit into
		// a repository): the staged one becomes it, in one rename instead
		// of one per object. Its objects are as durable as the others
		// (step 1), and NOREPLACE leaves a directory that another
		// transaction made meanwhile to the per-object renames below.
		err := unix.Renameat2(unix.AT_FDCWD, srcPath, unix.AT_FDCWD, dst, unix.RENAME_NOREPLACE)
		if err == nil {
			// Its entries were synced in step 1; its new name is in
			// objects/, which step 3 syncs.
			m.t.r.commitStep("moved-object")
			return nil
		}
		if !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("moving staged objects %s into place: %w", srcPath, err)
		}
	}
	if err := os.Mkdir(dst, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("creating %s: %w", dst, err)
	}
	dfd, err := unix.Open(dst, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dst, err)
	}
	defer unix.Close(dfd)
	sfd := int(src.Fd())
	var commits []stagedName
	for _, name := range names {
		if isCommitName(name) {
			commits = append(commits, stagedName{sub, name})
			continue
		}
		flags := uint(unix.RENAME_NOREPLACE)
		if strings.HasSuffix(name, ".commitmeta") {
			flags = 0 // detached metadata is replaced, not content addressed
		}
		if err := m.move(sfd, name, dfd, name, flags); err != nil {
			return err
		}
	}
	m.touched = append(m.touched, dst)
	m.commits = append(m.commits, commits...)
	return nil
}

// isCommitName reports whether a staged file is a commit object, which
// Commit moves last.
func isCommitName(name string) bool { return strings.HasSuffix(name, ".commit") }

// move renames one object; an object that another writer already stored
// (same name, so the same content) wins and the staged copy goes.
func (m *mover) move(fromFD int, from string, toFD int, to string, flags uint) error {
	err := unix.Renameat2(fromFD, from, toFD, to, flags)
	if errors.Is(err, unix.EEXIST) {
		unix.Unlinkat(fromFD, from, 0)
		return nil
	}
	if err != nil {
		return fmt.Errorf("moving object %s into place: %w", filepath.Base(from), err)
	}
	m.t.r.commitStep("moved-object")
	return nil
}

// parallel runs fn(0..n-1) on a few goroutines and returns the first
// error; after an error no new index starts. Directory syncs spend their
// time waiting in the kernel, so it runs more goroutines than there are
// CPUs.
func parallel(n int, fn func(i int) error) error {
	workers := min(n, max(4, 2*runtime.GOMAXPROCS(0)), 16)
	var (
		mu    sync.Mutex
		next  int
		first error
		wg    sync.WaitGroup
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				if first != nil || next >= n {
					mu.Unlock()
					return
				}
				i := next
				next++
				mu.Unlock()
				if err := fn(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
