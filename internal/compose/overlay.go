package compose

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
)

// CheckOverlays verifies that every overlay source exists, before anything
// is built.
func CheckOverlays(m *Manifest) error {
	var errs []error
	for i, o := range m.Overlays {
		if _, err := os.Stat(o.Source); err != nil {
			errs = append(errs, fmt.Errorf("overlays[%d].source: %w", i, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	return nil
}

// ApplyOverlays copies the overlays into the tree at root, in order: a
// directory's contents go below Dest, a file goes to Dest (or into it when
// Dest is a directory of the tree). Copies keep the source's permission
// bits and belong to root. Paths resolve inside the tree: a symlink of the
// tree cannot send a copy outside it.
func ApplyOverlays(root string, overlays []Overlay) error {
	r, err := os.OpenRoot(root)
	if err != nil {
		return err
	}
	defer r.Close()
	for i, o := range overlays {
		if err := applyOverlay(r, o); err != nil {
			return fmt.Errorf("overlays[%d] (%s): %w", i, o.Source, err)
		}
	}
	return nil
}

func applyOverlay(r *os.Root, o Overlay) error {
	dest := strings.TrimPrefix(path.Clean(o.Dest), "/")
	if dest == "" {
		dest = "."
	}
	st, err := os.Stat(o.Source)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		if dst, err := r.Stat(dest); err == nil && dst.IsDir() {
			dest = path.Join(dest, filepath.Base(o.Source))
		}
		if err := r.MkdirAll(path.Dir(dest), 0o755); err != nil {
			return err
		}
		return copyEntry(r, o.Source, dest, st)
	}
	if err := r.MkdirAll(dest, st.Mode().Perm()); err != nil {
		return err
	}
	return filepath.WalkDir(o.Source, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(o.Source, p)
		if err != nil || rel == "." {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		return copyEntry(r, p, path.Join(dest, filepath.ToSlash(rel)), info)
	})
}

// copyEntry copies one directory, file or symlink from src to dst in r.
func copyEntry(r *os.Root, src, dst string, st fs.FileInfo) error {
	switch {
	case st.IsDir():
		if err := r.Mkdir(dst, st.Mode().Perm()); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		if err := r.Chmod(dst, st.Mode().Perm()); err != nil {
			return err
		}
	case st.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := r.RemoveAll(dst); err != nil {
			return err
		}
		if err := r.Symlink(t, dst); err != nil {
			return err
		}
	case st.Mode().IsRegular():
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		if fi, err := r.Lstat(dst); err == nil && !fi.Mode().IsRegular() {
			if err := r.RemoveAll(dst); err != nil {
				return err
			}
		}
		out, err := r.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
		if err := r.Chmod(dst, st.Mode().Perm()); err != nil {
			return err
		}
	default:
		return fmt.Errorf("%s: not a file, directory or symlink: %w", src, errdefs.ErrInvalid)
	}
	return r.Lchown(dst, 0, 0)
}
