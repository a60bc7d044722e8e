package fsutil

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// removeWorkers bounds the goroutines RemoveTree uses: removal waits on
// the disk for cold directories, so a few more than the CPUs help.
const removeWorkers = 8

// RemoveTree removes path and everything below it, like os.RemoveAll, but
// faster on large trees: directories are read once, entries are removed
// relative to their directory's descriptor by their type (no failed
// unlink before each rmdir, no path lookups), and subdirectories are
// removed in parallel. Symlinks are removed, never followed. A path that
// does not exist is not an error.
func RemoveTree(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if !fi.IsDir() {
		return os.Remove(path)
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: path, Err: err}
	}
	r := &remover{sem: make(chan struct{}, removeWorkers)}
	r.dir(fd, path)
	if r.err != nil {
		return r.err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

type remover struct {
	sem chan struct{}
	mu  sync.Mutex
	err error
}

func (r *remover) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

func (r *remover) failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err != nil
}

// dir empties the directory open as fd (named path in errors) and closes
// fd. Its subdirectories are emptied and removed, in another goroutine
// when one is free.
func (r *remover) dir(fd int, path string) {
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var sub sync.WaitGroup
	for {
		ents, err := f.ReadDir(1024)
		for _, e := range ents {
			if r.failed() {
				return
			}
			name := e.Name()
			if !e.IsDir() {
				if err := unix.Unlinkat(fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
					r.fail(&fs.PathError{Op: "unlink", Path: path + "/" + name, Err: err})
				}
				continue
			}
			cfd, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				r.fail(&fs.PathError{Op: "open", Path: path + "/" + name, Err: err})
				return
			}
			child := path + "/" + name
			rm := func() {
				r.dir(cfd, child)
				if r.failed() {
					return
				}
				if err := unix.Unlinkat(fd, name, unix.AT_REMOVEDIR); err != nil && !errors.Is(err, unix.ENOENT) {
					r.fail(&fs.PathError{Op: "rmdir", Path: child, Err: err})
				}
			}
			select {
			case r.sem <- struct{}{}:
				sub.Add(1)
				go func() {
					defer func() { <-r.sem; sub.Done() }()
					rm()
				}()
			default:
				rm()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				r.fail(fmt.Errorf("reading directory %s: %w", path, err))
			}
			break
		}
	}
	sub.Wait()
}
