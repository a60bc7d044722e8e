package sysroot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/keyfile"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Sysroot is an open sysroot: its repository and the state loaded from
// its boot configuration. Methods that change the sysroot take the
// sysroot lock (shared with `ostree admin`), reload the state from disk,
// act, and leave the reloaded state behind. A Sysroot is not safe for
// concurrent use by several goroutines.
type Sysroot struct {
	path string
	repo *repo.Repo
	opts options

	bootversion    int
	subbootversion int
	deployments    []Deployment // staged first, then BLS order
	staged         *stagedRecord
	crashed        bool                // a step hook returned ErrCrash: undo nothing
	donor          *repo.CheckoutDonor // see OfferCheckout
}

type options struct {
	stepHook    func(step string) error
	procCmdline string // file with the kernel command line; "" = none
	cmdlineSet  bool
	stagedPath  string
	bootloader  Bootloader
}

// Option configures Open.
type Option func(*options)

// WithStepHook installs fn, called after each named step of every
// multi-step operation (each operation lists its step names under "Steps:"
// in its documentation; docs/crash-matrix.md). A non-nil
// error aborts the operation there; an error that wraps ErrCrash
// simulates a power loss: the operation returns it at once and undoes
// nothing, leaving the disk as a crash at that instant would.
func WithStepHook(fn func(step string) error) Option {
	return func(o *options) { o.stepHook = fn }
}

// WithProcCmdline reads the running kernel's command line from file
// instead of /proc/cmdline, and looks for the booted deployment even when
// the sysroot is not "/" (tests). An empty file means nothing is booted.
func WithProcCmdline(file string) Option {
	return func(o *options) { o.procCmdline, o.cmdlineSet = file, true }
}

// WithStagedPath sets the file that records a staged deployment (see
// StagedPath for the default).
func WithStagedPath(file string) Option {
	return func(o *options) { o.stagedPath = file }
}

// StagedPath returns where strata records the staged deployment of the
// sysroot at path: /run/strata/staged-deployment for the running system
// ("/"), whose /run is reset at every boot like libostree's
// /run/ostree/staged-deployment; otherwise S/run/strata/staged-deployment.
// The record is JSON (stagedRecord), not libostree's a{sv}: a deployment
// staged by strata is finalized by strata.
func StagedPath(path string) string {
	if filepath.Clean(path) == "/" {
		return "/run/strata/staged-deployment"
	}
	return filepath.Join(path, "run/strata/staged-deployment")
}

// Open opens the sysroot at path and loads its state (boot version,
// subboot version, deployments in order, the staged one). A directory
// that is not a sysroot is errdefs.ErrNotFound; a boot configuration that
// cannot be read back (bad symlinks, entries without a valid ostree=, a
// missing deployment) is errdefs.ErrCorrupt; both name what is wrong.
func Open(path string, opts ...Option) (*Sysroot, error) {
	s := &Sysroot{path: path}
	for _, o := range opts {
		o(&s.opts)
	}
	if s.opts.stagedPath == "" {
		s.opts.stagedPath = StagedPath(path)
	}
	if !s.opts.cmdlineSet && filepath.Clean(path) == "/" {
		s.opts.procCmdline = "/proc/cmdline"
	}
	for _, d := range []string{"ostree/deploy", "ostree/repo", "boot"} {
		if fi, err := os.Stat(filepath.Join(path, d)); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("opening sysroot %s: no %s directory: %w", path, d, errdefs.ErrNotFound)
		}
	}
	r, err := repo.Open(filepath.Join(path, "ostree/repo"))
	if err != nil {
		return nil, fmt.Errorf("opening sysroot %s: %w", path, err)
	}
	s.repo = r
	if err := s.load(); err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the repository, and removes a checkout offered to a
// Deploy that did not come.
func (s *Sysroot) Close() error {
	return errors.Join(s.dropDonor(), s.repo.Close())
}

// OfferCheckout hands dir, a checkout of commit made by repo.Checkout in
// the sysroot's repository (its tmp/) that nothing has written to since,
// over to s: the next Deploy takes from it the directories its commit
// shares with commit (repo.CheckoutDonor) instead of making them, which
// saves making them and removing dir's. dir is removed after that Deploy,
// or by Close; an earlier offer is removed now. Layering offers the
// checkout of the base it derived a commit from.
func (s *Sysroot) OfferCheckout(commit ostree.Checksum, dir string) error {
	err := s.dropDonor()
	s.donor = &repo.CheckoutDonor{Dir: dir, Commit: commit}
	return err
}

// takeDonor returns the offered checkout, if any; the caller removes it
// with removeDonor.
func (s *Sysroot) takeDonor() *repo.CheckoutDonor {
	d := s.donor
	s.donor = nil
	return d
}

func (s *Sysroot) dropDonor() error { return removeDonor(s.takeDonor()) }

// removeDonor removes what a checkout left of a donor.
func removeDonor(d *repo.CheckoutDonor) error {
	if d == nil {
		return nil
	}
	if err := os.RemoveAll(d.Dir); err != nil {
		return fmt.Errorf("removing the offered checkout %s: %w", d.Dir, err)
	}
	return nil
}

// Path returns the sysroot directory.
func (s *Sysroot) Path() string { return s.path }

// Repo returns the sysroot's repository (ostree/repo).
func (s *Sysroot) Repo() *repo.Repo { return s.repo }

// BootVersion returns the current boot version (0 or 1: boot/loader ->
// loader.N) and subboot version (ostree/boot.N -> boot.N.M).
func (s *Sysroot) BootVersion() (bootversion, subbootversion int) {
	return s.bootversion, s.subbootversion
}

// Reload reads the state from disk again.
func (s *Sysroot) Reload() error { return s.load() }

// Deployments returns the deployments in order: the staged one first if
// any, then the boot entries from the default down.
func (s *Sysroot) Deployments() []Deployment { return slices.Clone(s.deployments) }

// Booted returns the booted deployment, if any.
func (s *Sysroot) Booted() (Deployment, bool) {
	for _, d := range s.deployments {
		if d.Booted {
			return d, true
		}
	}
	return Deployment{}, false
}

// Staged returns the staged deployment, if any.
func (s *Sysroot) Staged() (Deployment, bool) {
	if len(s.deployments) > 0 && s.deployments[0].Staged {
		return s.deployments[0], true
	}
	return Deployment{}, false
}

// Pending returns the deployment the next boot starts if it is not the
// booted one: the first deployment of the booted stateroot before the
// booted one (rpm-ostree's meaning, ostree_sysroot_query_deployments_for).
// With nothing booted there is no pending deployment.
func (s *Sysroot) Pending() (Deployment, bool) {
	p, _ := s.pendingRollback()
	if p < 0 {
		return Deployment{}, false
	}
	return s.deployments[p], true
}

// RollbackDeployment returns the rollback deployment: the first
// deployment of the booted stateroot after the booted one; with nothing
// booted, index 1. (Rollback is the operation that makes it the default.)
func (s *Sysroot) RollbackDeployment() (Deployment, bool) {
	_, r := s.pendingRollback()
	if r < 0 {
		return Deployment{}, false
	}
	return s.deployments[r], true
}

func (s *Sysroot) pendingRollback() (pending, rollback int) {
	pending, rollback = -1, -1
	b, ok := s.Booted()
	if !ok {
		if len(s.deployments) > 1 {
			rollback = 1
		}
		return
	}
	found := false
	for i, d := range s.deployments {
		if d.OSName != b.OSName {
			continue
		}
		if d.Booted {
			found = true
			continue
		}
		if !found && pending < 0 {
			pending = i
		} else if found && rollback < 0 {
			rollback = i
		}
	}
	return
}

// MergeDeployment returns the deployment whose /etc a new deployment of
// osname merges: the booted one if it belongs to osname, else the first
// deployment of osname (ostree_sysroot_get_merge_deployment). A staged
// deployment is never a merge source.
func (s *Sysroot) MergeDeployment(osname string) (Deployment, bool) {
	if b, ok := s.Booted(); ok && b.OSName == osname {
		return b, true
	}
	for _, d := range s.deployments {
		if d.OSName == osname && !d.Staged && !d.Booted {
			return d, true
		}
	}
	return Deployment{}, false
}

// nonStaged returns the deployments in the boot configuration.
func (s *Sysroot) nonStaged() []Deployment {
	if _, ok := s.Staged(); ok {
		return slices.Clone(s.deployments[1:])
	}
	return slices.Clone(s.deployments)
}

func (s *Sysroot) abs(rel string) string { return filepath.Join(s.path, rel) }

// load reads the state the way sysroot_load_from_bootloader_configs does
// (docs/formats/sysroot.md).
func (s *Sysroot) load() error {
	bv, err := readBootversion(s.path)
	if err != nil {
		return err
	}
	sub, err := s.readSubbootversion(bv)
	if err != nil {
		return err
	}
	entries, err := readBootEntries(s.path, bv)
	if err != nil {
		return fmt.Errorf("loading sysroot %s: %w", s.path, err)
	}
	var ds []Deployment
	for _, e := range entries {
		d := e.Deployment
		if err := s.fillDeployment(&d); err != nil {
			return fmt.Errorf("loading sysroot %s: entry boot/loader.%d/entries/%s: %w", s.path, bv, e.File, err)
		}
		ds = append(ds, d)
	}
	staged, sd, err := s.readStaged(ds)
	if err != nil {
		return err
	}
	s.staged = staged
	if staged != nil {
		ds = append([]Deployment{sd}, ds...)
	}
	if err := s.markBooted(ds); err != nil {
		return err
	}
	for i := range ds {
		ds[i].Index = i
	}
	s.bootversion, s.subbootversion, s.deployments = bv, sub, ds
	return nil
}

// readBootversion reads the boot version of the sysroot at path from the
// boot/loader symlink (absent: 0).
func readBootversion(path string) (int, error) {
	p := filepath.Join(path, "boot/loader")
	fi, err := os.Lstat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading boot version: %w", err)
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		return 0, fmt.Errorf("boot version: %s is not a symbolic link: %w", p, errdefs.ErrCorrupt)
	}
	t, err := os.Readlink(p)
	if err != nil {
		return 0, fmt.Errorf("reading boot version: %w", err)
	}
	switch t {
	case "loader.0":
		return 0, nil
	case "loader.1":
		return 1, nil
	}
	return 0, fmt.Errorf("boot version: %s -> %q, want loader.0 or loader.1: %w", p, t, errdefs.ErrCorrupt)
}

// readSubbootversion reads ostree/boot.BV (absent: 0).
func (s *Sysroot) readSubbootversion(bv int) (int, error) {
	p := s.abs(fmt.Sprintf("ostree/boot.%d", bv))
	t, err := os.Readlink(p)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("reading subboot version: %w", err)
	}
	switch {
	case strings.HasSuffix(t, ".0"):
		return 0, nil
	case strings.HasSuffix(t, ".1"):
		return 1, nil
	}
	return 0, fmt.Errorf("subboot version: %s -> %q: %w", p, t, errdefs.ErrCorrupt)
}

type namedEntry struct {
	name  string
	entry *blsEntry
}

// readEntries reads boot/loader.BV/entries/ostree-*.conf (regular files
// only), sorted by their version key, highest first.
func readEntries(path string, bv int) ([]namedEntry, error) {
	dir := filepath.Join(path, fmt.Sprintf("boot/loader.%d/entries", bv))
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading boot entries: %w", err)
	}
	var out []namedEntry
	for _, de := range ents {
		n := de.Name()
		if !strings.HasPrefix(n, "ostree-") || !strings.HasSuffix(n, ".conf") {
			continue
		}
		fi, err := os.Stat(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading boot entry %s: %w", n, err)
		}
		if !fi.Mode().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading boot entry %s: %w", n, err)
		}
		out = append(out, namedEntry{n, parseBLS(data)})
	}
	slices.SortStableFunc(out, func(a, b namedEntry) int {
		av, aok := a.entry.get("version")
		bv, bok := b.entry.get("version")
		switch {
		case aok && bok:
			return -strverscmp(av, bv)
		case aok:
			return -1
		case bok:
			return 1
		}
		return 0
	})
	return out, nil
}

// bootEntryFrom resolves an entry's ostree= to its deployment
// (parse_deployment) and fills the entry's fields.
func bootEntryFrom(path, file string, e *blsEntry) (BootEntry, error) {
	arg, ok := e.ostreeArg()
	if !ok {
		return BootEntry{}, fmt.Errorf("no ostree= kernel argument: %w", errdefs.ErrCorrupt)
	}
	bl, err := parseBootLink(arg)
	if err != nil {
		return BootEntry{}, err
	}
	target, err := os.Readlink(filepath.Join(path, arg[1:]))
	if err != nil {
		return BootEntry{}, fmt.Errorf("reading boot link %s: %w: %w", arg, err, errdefs.ErrCorrupt)
	}
	csum, serial, err := parseDeployName(filepath.Base(target))
	if err != nil {
		return BootEntry{}, err
	}
	d := Deployment{OSName: bl.osname, Checksum: csum, Serial: serial, BootChecksum: bl.bootcsum, BootSerial: bl.bootserial}
	if fi, err := os.Stat(filepath.Join(path, d.Path())); err != nil || !fi.IsDir() {
		return BootEntry{}, fmt.Errorf("deployment %s of ostree=%s is missing: %w", d.Path(), arg, errdefs.ErrCorrupt)
	}
	d.Kargs, d.ostreePos = withoutKey(splitOptions(e.vals["options"]), "ostree")
	be := BootEntry{File: file, BootLink: arg, Deployment: d}
	be.Title, _ = e.get("title")
	be.Version, _ = e.get("version")
	be.Options, _ = e.get("options")
	be.Linux, _ = e.get("linux")
	if i, ok := e.get("initrd"); ok {
		be.Initrd = append([]string{i}, e.extraI...)
	}
	return be, nil
}

// fillDeployment reads the origin file and the commit's version and time.
func (s *Sysroot) fillDeployment(d *Deployment) error {
	data, err := os.ReadFile(s.abs(d.OriginPath()))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return fmt.Errorf("reading origin %s: %w", d.OriginPath(), err)
	default:
		f, err := keyfile.Parse(data)
		if err != nil {
			return fmt.Errorf("parsing origin %s: %w: %w", d.OriginPath(), err, errdefs.ErrCorrupt)
		}
		d.Origin, d.Refspec, d.Pinned = f, originRefspec(f), originPinned(f)
		d.ImageDigest = originImageDigest(f)
	}
	if c, err := s.repo.ReadCommit(d.Checksum); err == nil {
		d.Version, d.Timestamp = c.Version(), c.Time()
	}
	return nil
}

// markBooted finds the booted deployment from the ostree= argument of
// the running kernel: the deployment whose directory is the one that
// S/ostree=... resolves to.
func (s *Sysroot) markBooted(ds []Deployment) error {
	if s.opts.procCmdline == "" {
		return nil
	}
	data, err := os.ReadFile(s.opts.procCmdline)
	if err != nil {
		return fmt.Errorf("reading kernel command line: %w", err)
	}
	arg, ok := cmdlineOstree(string(data))
	if !ok {
		return nil
	}
	// On a booted system the deployment is mounted at /, so / itself
	// names it (libostree compares / with each deployment directory). The
	// ostree= path may no longer resolve there: a cleanup after a
	// rollback removes the boot version it went through. Elsewhere (tests
	// giving a command line) the ostree= path is followed.
	var target os.FileInfo
	if filepath.Clean(s.path) == "/" {
		target, err = os.Stat("/")
	} else {
		target, err = os.Stat(filepath.Join(s.path, arg))
	}
	if err != nil {
		return fmt.Errorf("booted deployment ostree=%s: %w", arg, err)
	}
	for i := range ds {
		if fi, err := os.Stat(s.abs(ds[i].Path())); err == nil && os.SameFile(fi, target) {
			ds[i].Booted = true
			return nil
		}
	}
	return fmt.Errorf("booted deployment ostree=%s is not in the boot configuration: %w", arg, errdefs.ErrCorrupt)
}

// step runs the step hook after the named step.
func (s *Sysroot) step(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("at step %s: %w", name, err)
	}
	if s.opts.stepHook == nil {
		return nil
	}
	if err := s.opts.stepHook(name); err != nil {
		if errors.Is(err, ErrCrash) {
			s.crashed = true
		}
		return fmt.Errorf("at step %s: %w", name, err)
	}
	return nil
}

// ErrCrash, wrapped by an error of a step hook, makes the operation stop
// as a power loss would: nothing is undone (crash-matrix tests).
var ErrCrash = errors.New("simulated crash")
