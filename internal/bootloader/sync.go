package bootloader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
)

// DefaultTries is the boot counter of a new default entry on a node.
const DefaultTries = 3

// Options tune Sync.
type Options struct {
	// Tries is the counter (+Tries) a new entry for the default gets
	// when its deployment has not booted; 0 writes no counter (the first
	// deployment of a fresh image).
	Tries int
	// Timeout is loader.conf's menu timeout in seconds, written only
	// when loader.conf does not exist.
	Timeout int
	// StepHook, if set, is called after each step with its name
	// ("loader-conf", "kernel DIR/FILE", "entry N", "delete ENTRY",
	// "delete-kernels DIR"); an error stops Sync there and is returned
	// (crash tests).
	StepHook func(step string) error
}

// LoaderConf returns loader/loader.conf: the menu timeout, the default
// pattern that matches strata's entries only, no editor, no automatic
// entries.
func LoaderConf(timeout int) []byte {
	return []byte("timeout " + strconv.Itoa(timeout) + "\ndefault " + namePrefix + "*\neditor no\nauto-entries no\nauto-firmware no\nconsole-mode keep\n")
}

// Sync makes the ESP at espDir boot list (list[0] is the default), the
// projection of docs/boot.md "The switch":
//
//  0. loader/loader.conf is written if missing; leftover temporary files
//     are removed;
//  1. missing kernels and initramfs images are copied into
//     strata/OS-BOOTCSUM/ (temporary name, fsync, rename, fsync of the
//     directory);
//  2. unless the entries are already in place (every ID present once, ORD
//     decreasing along the list, list[0] above every other entry of
//     strata), each entry i gets ORD B+n-1-i, where B is 1 + the largest
//     ORD on the ESP, in list order: an existing entry with the same ID is
//     renamed, keeping its counter; a new one is written under a temporary
//     name, fsynced and renamed into place, with the counter of the
//     newest existing entry of the same deployment, else +Tries if it is
//     the default and its deployment has not booted, else none. The first
//     rename or creation is the switch as firmware sees it;
//  3. entries of strata not in list are deleted, then the kernel
//     directories no entry of list uses.
//
// Every entry that becomes visible names files that were complete and
// synced before. Sync is idempotent: run again, it changes nothing.
// Foreign files are left alone.
func Sync(ctx context.Context, espDir string, list []Entry, opts Options) error {
	if len(list) == 0 {
		return fmt.Errorf("syncing %s: no deployment to boot: %w", espDir, errdefs.ErrInvalid)
	}
	seen := map[string]bool{}
	for _, e := range list {
		if err := e.validate(); err != nil {
			return err
		}
		if seen[e.DeploymentKey()] {
			return fmt.Errorf("syncing %s: deployment %s listed twice: %w", espDir, e.DeploymentKey(), errdefs.ErrInvalid)
		}
		seen[e.DeploymentKey()] = true
	}
	s := &syncer{ctx: ctx, esp: espDir, opts: opts}
	if err := s.prepare(); err != nil {
		return err
	}
	for _, e := range list {
		if err := s.installKernel(e); err != nil {
			return err
		}
	}
	keep, err := s.placeEntries(list)
	if err != nil {
		return err
	}
	return s.removeStale(list, keep)
}

type syncer struct {
	ctx  context.Context
	esp  string
	opts Options
}

func (s *syncer) step(name string) error {
	if err := s.ctx.Err(); err != nil {
		return fmt.Errorf("syncing %s at step %s: %w", s.esp, name, err)
	}
	if s.opts.StepHook == nil {
		return nil
	}
	if err := s.opts.StepHook(name); err != nil {
		return fmt.Errorf("syncing %s at step %s: %w", s.esp, name, err)
	}
	return nil
}

func (s *syncer) abs(rel string) string { return filepath.Join(s.esp, filepath.FromSlash(rel)) }

// prepare creates the directories and loader.conf, and removes
// temporary files an interrupted Sync left.
func (s *syncer) prepare() error {
	for _, d := range []string{entriesDir, kernelsDir} {
		if err := os.MkdirAll(s.abs(d), 0o755); err != nil {
			return fmt.Errorf("creating %s on the ESP: %w", d, err)
		}
	}
	if err := removeTemps(s.abs(entriesDir)); err != nil {
		return err
	}
	kdirs, err := os.ReadDir(s.abs(kernelsDir))
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.abs(kernelsDir), err)
	}
	for _, d := range kdirs {
		if d.IsDir() {
			if err := removeTemps(s.abs(kernelsDir + "/" + d.Name())); err != nil {
				return err
			}
		}
	}
	conf := s.abs("loader/loader.conf")
	if _, err := os.Stat(conf); errors.Is(err, fs.ErrNotExist) {
		if err := fsutil.WriteFileAtomic(conf, LoaderConf(s.opts.Timeout), 0o644); err != nil {
			return fmt.Errorf("writing loader.conf: %w", err)
		}
		if err := syncRenamed(conf); err != nil {
			return err
		}
		if err := s.step("loader-conf"); err != nil {
			return err
		}
	}
	return nil
}

const tmpSuffix = ".tmp"

// removeTemps deletes the ".NAME.tmp" files of dir.
func removeTemps(dir string) error {
	des, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, de := range des {
		if n := de.Name(); strings.HasPrefix(n, ".") && strings.HasSuffix(n, tmpSuffix) {
			if err := os.Remove(filepath.Join(dir, n)); err != nil {
				return fmt.Errorf("removing leftover %s: %w", n, err)
			}
		}
	}
	return nil
}

// installKernel copies e's kernel and initramfs if missing. A file under
// its final name is complete: it was renamed into place after an fsync.
func (s *syncer) installKernel(e Entry) error {
	dir := s.abs(e.KernelDir())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	files := [][2]string{{e.Kernel, e.kernelName()}}
	if e.Initramfs != "" {
		files = append(files, [2]string{e.Initramfs, e.initramfsName()})
	}
	for _, f := range files {
		dst := filepath.Join(dir, f[1])
		if fi, err := os.Stat(dst); err == nil && fi.Mode().IsRegular() {
			continue
		}
		if err := copyDurable(f[0], dst); err != nil {
			return err
		}
		if err := s.step("kernel " + e.KernelDir() + "/" + f[1]); err != nil {
			return err
		}
	}
	return nil
}

// copyDurable copies src to dst through .NAME.tmp, fsync, rename and an
// fsync of the directory. src must be a regular file and is never
// followed through a symlink: the ESP is readable by every user, and the
// kernel files come from a deployment's content, so a planted link would
// publish whatever host file it names (errdefs.ErrInvalid).
func copyDurable(src, dst string) (err error) {
	in, err := os.OpenFile(src, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if errors.Is(err, syscall.ELOOP) {
		return fmt.Errorf("copying %s to the ESP: it is a symbolic link: %w", src, errdefs.ErrInvalid)
	}
	if err != nil {
		return fmt.Errorf("copying to the ESP: %w", err)
	}
	defer in.Close()
	if fi, err := in.Stat(); err != nil {
		return fmt.Errorf("copying %s to the ESP: %w", src, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("copying %s to the ESP: not a regular file: %w", src, errdefs.ErrInvalid)
	}
	tmp := filepath.Join(filepath.Dir(dst), "."+filepath.Base(dst)+tmpSuffix)
	out, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("copying %s to the ESP: %w", src, err)
	}
	defer func() {
		if err != nil {
			out.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(out, in); err != nil {
		return fmt.Errorf("copying %s to %s: %w", src, dst, err)
	}
	if err := out.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("placing %s: %w", dst, err)
	}
	if err := syncRenamed(dst); err != nil {
		return err
	}
	return fsutil.FsyncDir(filepath.Dir(dst))
}

// syncRenamed fsyncs a file that was just renamed. Linux's vfat writes a
// renamed file's new directory entry with size 0 and no first cluster, and
// fills them in only when the file's inode is written back; an fsync of
// the directory does not write it. A power cut before writeback (up to
// 30 s) left entries of 0 bytes and systemd-boot with "No loader found"
// (internal/e2e, power-cut). An fsync of the file itself writes its
// directory entry.
func syncRenamed(p string) error { return fsutil.FsyncFile(p) }

// placeEntries is step 2; it returns the file names of list's entries.
func (s *syncer) placeEntries(list []Entry) (map[string]bool, error) {
	cur, err := Entries(s.esp)
	if err != nil {
		return nil, err
	}
	byID := map[string]ESPEntry{}
	maxOrd := 0
	for _, c := range cur { // highest ORD first: keep the newest of an ID
		if _, ok := byID[c.ID]; !ok {
			byID[c.ID] = c
		}
		maxOrd = max(maxOrd, c.Ord)
	}
	keep := map[string]bool{}
	if inPlace(cur, list, byID) {
		for _, e := range list {
			keep[byID[e.ID()].File] = true
		}
		return keep, nil
	}
	dir := s.abs(entriesDir)
	n := len(list)
	for i, e := range list {
		id := e.ID()
		nm := Name{Ord: maxOrd + 1 + n - 1 - i, OS: e.OS, ID: id}
		if c, ok := byID[id]; ok {
			nm.Tries = c.Tries
			if err := os.Rename(filepath.Join(dir, c.File), filepath.Join(dir, nm.String())); err != nil {
				return nil, fmt.Errorf("renaming boot entry %s to %s: %w", c.File, nm, err)
			}
			if err := syncRenamed(filepath.Join(dir, nm.String())); err != nil {
				return nil, err
			}
		} else {
			nm.Tries = s.newTries(cur, e, i)
			tmp := filepath.Join(dir, "."+nm.String()+tmpSuffix)
			if err := writeDurable(tmp, e.Text()); err != nil {
				return nil, err
			}
			if err := os.Rename(tmp, filepath.Join(dir, nm.String())); err != nil {
				return nil, fmt.Errorf("placing boot entry %s: %w", nm, err)
			}
			if err := syncRenamed(filepath.Join(dir, nm.String())); err != nil {
				return nil, err
			}
		}
		if err := fsutil.FsyncDir(dir); err != nil {
			return nil, err
		}
		keep[nm.String()] = true
		if err := s.step("entry " + strconv.Itoa(i)); err != nil {
			return nil, err
		}
	}
	return keep, nil
}

// newTries is the counter of a new entry for e at index i.
func (s *syncer) newTries(cur []ESPEntry, e Entry, i int) Tries {
	if c, ok := FindDeployment(cur, e.DeploymentKey()); ok {
		return c.Tries
	}
	if i == 0 && !e.Booted && s.opts.Tries > 0 {
		return Tries{Counted: true, Left: s.opts.Tries, Suffix: triesSuffix(s.opts.Tries)}
	}
	return Tries{}
}

// inPlace reports whether the entries of list are on the ESP already,
// each once, in order, with list[0] above every entry of strata.
func inPlace(cur []ESPEntry, list []Entry, byID map[string]ESPEntry) bool {
	count := map[string]int{}
	for _, c := range cur {
		count[c.ID]++
	}
	prev := -1
	for i, e := range list {
		c, ok := byID[e.ID()]
		if !ok || count[e.ID()] != 1 || (i > 0 && c.Ord >= prev) {
			return false
		}
		prev = c.Ord
	}
	return len(cur) > 0 && cur[0].ID == list[0].ID() && (len(cur) == 1 || cur[1].Ord < cur[0].Ord)
}

func writeDurable(p string, data []byte) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", p, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	return f.Close()
}

// removeStale is step 3.
func (s *syncer) removeStale(list []Entry, keep map[string]bool) error {
	cur, err := Entries(s.esp)
	if err != nil {
		return err
	}
	dir := s.abs(entriesDir)
	for _, c := range cur {
		if keep[c.File] {
			continue
		}
		if err := os.Remove(filepath.Join(dir, c.File)); err != nil {
			return fmt.Errorf("removing stale boot entry %s: %w", c.File, err)
		}
		if err := fsutil.FsyncDir(dir); err != nil {
			return err
		}
		if err := s.step("delete " + c.File); err != nil {
			return err
		}
	}
	used := map[string]bool{}
	for _, e := range list {
		used[filepath.Base(e.KernelDir())] = true
	}
	kdirs, err := os.ReadDir(s.abs(kernelsDir))
	if err != nil {
		return fmt.Errorf("reading %s: %w", s.abs(kernelsDir), err)
	}
	for _, d := range kdirs {
		if used[d.Name()] {
			continue
		}
		if err := os.RemoveAll(s.abs(kernelsDir + "/" + d.Name())); err != nil {
			return fmt.Errorf("removing stale kernel directory %s: %w", d.Name(), err)
		}
		if err := s.step("delete-kernels " + d.Name()); err != nil {
			return err
		}
	}
	return fsutil.FsyncDir(s.abs(kernelsDir))
}
