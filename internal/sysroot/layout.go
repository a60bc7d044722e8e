package sysroot

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/repo"
)

// Top-level directories of `ostree admin init-fs` (docs/formats/sysroot.md), with
// their modes.
var initFSDirs = []struct {
	name string
	mode fs.FileMode
}{
	{"boot", 0o755}, {"dev", 0o755}, {"home", 0o755}, {"proc", 0o755}, {"run", 0o755},
	{"sys", 0o755}, {"root", 0o700}, {"tmp", 0o777 | fs.ModeSticky},
}

// Init makes path a sysroot with the stateroot osname: the layout of
// `ostree admin init-fs PATH` followed by `ostree admin os-init OSNAME`
// (docs/formats/sysroot.md), with the repository at ostree/repo in mode bare. It is
// idempotent: what exists is kept. A directory that holds anything but
// the sysroot's own entries is refused with errdefs.ErrFailedPrecondition,
// so that Init never turns a random directory into a sysroot.
func Init(path, osname string) error {
	if err := validateOSName(osname); err != nil {
		return err
	}
	if err := initFS(path); err != nil {
		return err
	}
	return InitOS(path, osname)
}

func initFS(path string) error {
	if err := os.MkdirAll(path, 0o755); err != nil {
		return fmt.Errorf("creating sysroot %s: %w", path, err)
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return fmt.Errorf("reading sysroot %s: %w", path, err)
	}
	allowed := map[string]bool{"ostree": true}
	for _, d := range initFSDirs {
		allowed[d.name] = true
	}
	for _, e := range ents {
		if !allowed[e.Name()] {
			return fmt.Errorf("initializing sysroot %s: %s is not part of a sysroot: %w", path, e.Name(), errdefs.ErrFailedPrecondition)
		}
	}
	for _, d := range initFSDirs {
		if err := mkdirMode(filepath.Join(path, d.name), d.mode); err != nil {
			return err
		}
	}
	for _, d := range []string{"ostree", "ostree/deploy"} {
		if err := mkdirMode(filepath.Join(path, d), 0o755); err != nil {
			return err
		}
	}
	rp := filepath.Join(path, "ostree/repo")
	if _, err := os.Stat(filepath.Join(rp, "objects")); err == nil {
		r, err := repo.Open(rp)
		if err != nil {
			return fmt.Errorf("opening sysroot repository: %w", err)
		}
		return r.Close()
	}
	if err := mkdirMode(rp, 0o755); err != nil {
		return err
	}
	r, err := repo.Init(rp, repo.ModeBare)
	if err != nil {
		return fmt.Errorf("creating sysroot repository: %w", err)
	}
	return r.Close()
}

// InitOS creates the stateroot osname in the sysroot at path, as
// `ostree admin os-init` does (ostree_sysroot_init_osname): the directory
// ostree/deploy/OSNAME and its shared /var with tmp (01777), lib, log,
// run -> ../run and lock -> ../run/lock. It is idempotent. The var
// directory is created here once and never touched by a deploy.
func InitOS(path, osname string) error {
	if err := validateOSName(osname); err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(path, "ostree/deploy")); err != nil {
		return fmt.Errorf("initializing stateroot %s: %s is not a sysroot: %w", osname, path, errdefs.ErrNotFound)
	}
	base := filepath.Join(path, "ostree/deploy", osname)
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{{"", 0o755}, {"var", 0o755}, {"var/tmp", 0o777 | fs.ModeSticky}, {"var/lib", 0o755}, {"var/log", 0o755}} {
		if err := mkdirMode(filepath.Join(base, d.name), d.mode); err != nil {
			return err
		}
	}
	for _, l := range []struct{ name, target string }{{"var/run", "../run"}, {"var/lock", "../run/lock"}} {
		p := filepath.Join(base, l.name)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.Symlink(l.target, p); err != nil {
			return fmt.Errorf("initializing stateroot %s: %w", osname, err)
		}
	}
	return bumpMtime(path)
}

// mkdirMode creates dir with exactly mode (umask aside) unless it exists.
func mkdirMode(dir string, mode fs.FileMode) error {
	err := os.Mkdir(dir, 0o700)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	return nil
}

// validateOSName accepts stateroot names that fit in the paths and the
// ostree= argument libostree builds from them.
func validateOSName(osname string) error {
	if osname == "" || osname == "." || osname == ".." || strings.ContainsAny(osname, "/ \t\n\x00") {
		return fmt.Errorf("stateroot name %q: %w", osname, errdefs.ErrInvalid)
	}
	return nil
}

// bumpMtime touches ostree/deploy so that watchers see a change
// (_ostree_sysroot_bump_mtime).
func bumpMtime(path string) error {
	now := time.Now()
	if err := os.Chtimes(filepath.Join(path, "ostree/deploy"), now, now); err != nil {
		return fmt.Errorf("bumping mtime of ostree/deploy: %w", err)
	}
	return nil
}
