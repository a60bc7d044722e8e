package sysext

import (
	"io/fs"
	"path"

	"github.com/diskfs/go-diskfs/filesystem/squashfs"
)

// squashFS adapts go-diskfs's squashfs reader to io/fs: a missing name is
// fs.ErrNotExist (the reader reports it with an error of its own) and
// every name is checked with fs.ValidPath first.
type squashFS struct{ sq *squashfs.FileSystem }

var (
	_ fs.ReadDirFS = squashFS{}
	_ fs.StatFS    = squashFS{}
)

func (s squashFS) Open(name string) (fs.File, error) {
	if _, err := s.Stat(name); err != nil {
		return nil, err
	}
	return s.sq.Open(name)
}

func (s squashFS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return s.sq.ReadDir(name)
}

func (s squashFS) Stat(name string) (fs.FileInfo, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrInvalid}
	}
	if name == "." {
		return s.sq.Stat(name)
	}
	des, err := s.ReadDir(path.Dir(name))
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
	}
	for _, d := range des {
		if d.Name() == path.Base(name) {
			return d.Info()
		}
	}
	return nil, &fs.PathError{Op: "stat", Path: name, Err: fs.ErrNotExist}
}
