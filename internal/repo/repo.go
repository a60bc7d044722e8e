package repo

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/keyfile"
	"golang.org/x/sys/unix"
)

// Mode is a repository storage mode (docs/formats/repository.md).
type Mode string

// The storage modes. ModeArchive is written to config as "archive-z2",
// the name libostree writes.
const (
	ModeArchive      Mode = "archive"
	ModeBare         Mode = "bare"
	ModeBareUser     Mode = "bare-user"
	ModeBareUserOnly Mode = "bare-user-only"
)

// ParseMode parses a mode name as the config file or a flag spells it.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "archive", "archive-z2":
		return ModeArchive, nil
	case "bare", "bare-user", "bare-user-only":
		return Mode(s), nil
	}
	return "", fmt.Errorf("repository mode %q (want archive, bare, bare-user or bare-user-only): %w", s, errdefs.ErrInvalid)
}

func (m Mode) configName() string {
	if m == ModeArchive {
		return "archive-z2"
	}
	return string(m)
}

// Repo is an open repository. It is safe for concurrent use by several
// goroutines; several processes may use one repository at once (writers
// take a shared lock on .lock, prune takes it exclusively).
type Repo struct {
	path      string
	mode      Mode
	config    *keyfile.File
	fsync     bool
	zlibLevel int

	// onCommitStep, if set (crash tests), is called at each named step
	// of Txn.Commit: "staged", "synced", "moved-object" (after each
	// object), "objects-visible", "refs-written".
	onCommitStep func(step string)
}

func (r *Repo) commitStep(step string) {
	if r.onCommitStep != nil {
		r.onCommitStep(step)
	}
}

// DefaultZlibLevel is the deflate level for archive repositories whose
// config does not set [archive] zlib-level (which wins when set). Any level
// reads back identically: checksums are over uncompressed data (docs/formats/objects.md).
// libostree defaults to 6; strata uses 2, measured with klauspost/flate on
// the 650 MB, 16k-file Debian corpus (scripts/corpus), one core:
//
//	level  compressed   vs level 6  compress CPU  whole archive commit CPU
//	1      270.5 MB     +12.1%      3.9 s         12.8 s
//	2      263.6 MB     +9.3%       4.2 s         11.6 s
//	3      256.2 MB     +6.2%       5.4 s         13.1 s
//	4      249.0 MB     +3.2%       6.0 s
//	5      243.6 MB     +1.0%       7.4 s
//	6      241.3 MB     (ostree's)  7.8 s         16.0 s
//
// Level 2 halves the compression CPU of level 6 for 9% more bytes; level 1
// saves nothing more in a whole commit (hashing and I/O dominate).
const DefaultZlibLevel = 2

// Init creates a repository at path with the given mode, like `ostree init`.
// An existing repository is refused with errdefs.ErrAlreadyExists.
func Init(path string, mode Mode) (*Repo, error) {
	if _, err := ParseMode(string(mode)); err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(path, "objects")); err == nil {
		return nil, fmt.Errorf("repository %s: %w", path, errdefs.ErrAlreadyExists)
	}
	// tmp/ holds what is not yet verified or not yet in the repository. It is
	// 0755 as ostree makes it (ostree opens it even to read a repository, so
	// 0700 would lock other users out of `ostree admin status`); what is
	// staged lives in 0700 staging directories inside it, which is what
	// keeps it from other users (docs/threat-model.md).
	for _, d := range []struct {
		name string
		perm os.FileMode
	}{{"", 0o755}, {"objects", 0o755}, {"refs/heads", 0o755}, {"refs/remotes", 0o755}, {"refs/mirrors", 0o755},
		{"state", 0o755}, {"tmp", 0o755}, {"tmp/cache", 0o755}, {"extensions", 0o755}} {
		if err := os.MkdirAll(filepath.Join(path, d.name), d.perm); err != nil {
			return nil, fmt.Errorf("creating repository %s: %w", path, err)
		}
	}
	cfg := fmt.Sprintf("[core]\nrepo_version=1\nmode=%s\n", mode.configName())
	if err := fsutil.WriteFileAtomic(filepath.Join(path, "config"), []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("writing repository config: %w", err)
	}
	return Open(path)
}

// Open opens an existing repository.
func Open(path string) (*Repo, error) {
	if fi, err := os.Stat(filepath.Join(path, "objects")); err != nil || !fi.IsDir() {
		return nil, fmt.Errorf("opening repository %s: no objects directory: %w", path, errdefs.ErrNotFound)
	}
	data, err := os.ReadFile(filepath.Join(path, "config"))
	if err != nil {
		return nil, fmt.Errorf("opening repository %s: %w", path, err)
	}
	cfg, err := keyfile.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("repository %s config: %w", path, err)
	}
	r := &Repo{path: path, config: cfg}
	if v, _ := cfg.Get("core", "repo_version"); v != "1" {
		return nil, fmt.Errorf("repository %s: repo_version %q: %w", path, v, errdefs.ErrUnsupported)
	}
	ms, ok := cfg.Get("core", "mode")
	if !ok {
		ms = "bare"
	}
	if r.mode, err = ParseMode(ms); err != nil {
		return nil, fmt.Errorf("repository %s: %w", path, err)
	}
	if r.fsync, err = cfg.GetBool("core", "fsync", true); err != nil {
		return nil, err
	}
	if r.zlibLevel, err = cfg.GetInt("archive", "zlib-level", DefaultZlibLevel); err != nil {
		return nil, err
	}
	r.zlibLevel = min(max(r.zlibLevel, 1), 9)
	return r, nil
}

// Close releases the repository. Open holds nothing (reads need neither
// the lock nor write access), so Close only exists for symmetry with the
// writers' handles and always returns nil.
func (r *Repo) Close() error { return nil }

// Path returns the repository directory.
func (r *Repo) Path() string { return r.path }

// Mode returns the storage mode.
func (r *Repo) Mode() Mode { return r.mode }

// Config returns the parsed config file; change it with SetConfig.
func (r *Repo) Config() *keyfile.File { return r.config }

// SetConfig writes the config file atomically.
func (r *Repo) SetConfig(f *keyfile.File) error {
	if err := fsutil.WriteFileAtomic(filepath.Join(r.path, "config"), f.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing repository config: %w", err)
	}
	r.config = f
	return nil
}

// SetFsync turns durability syncs on or off for this handle (tests and
// throwaway repositories); the default comes from core.fsync.
func (r *Repo) SetFsync(on bool) { r.fsync = on }

// lockTimeout is libostree's default core.lock-timeout-secs.
const lockTimeout = 30 * time.Second

// lock takes the repository lock, shared or exclusive, waiting up to the
// configured timeout. It returns the unlock function. The lock is an OFD
// lock on .lock, the kind libostree takes, so strata and ostree exclude
// each other too.
func (r *Repo) lock(exclusive bool) (func(), error) {
	typ := int16(unix.F_RDLCK)
	if exclusive {
		typ = unix.F_WRLCK
	}
	// OFD locks belong to the open file description, so take each one on
	// its own descriptor: two transactions in one process then behave like
	// two processes.
	fd, err := r.openLock(false)
	if err != nil {
		return nil, err
	}
	return r.takeLock(fd, typ)
}

// readLock takes the lock shared for a reader that must not see objects
// vanish under it (fsck against a concurrent prune). Unlike a writer it
// needs no write access: the lock file may be opened read-only.
func (r *Repo) readLock() (func(), error) {
	fd, err := r.openLock(true)
	if err != nil {
		return nil, err
	}
	if fd < 0 {
		return func() {}, nil
	}
	return r.takeLock(fd, unix.F_RDLCK)
}

// takeLock sets an OFD lock of type typ on fd, waiting up to lockTimeout;
// it owns fd from then on.
func (r *Repo) takeLock(fd int, typ int16) (func(), error) {
	deadline := time.Now().Add(lockTimeout)
	for {
		lk := unix.Flock_t{Type: typ, Whence: 0}
		err := unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return func() {
				unlock := unix.Flock_t{Type: unix.F_UNLCK}
				unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &unlock)
				unix.Close(fd)
			}, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) {
			unix.Close(fd)
			return nil, fmt.Errorf("locking repository: %w", err)
		}
		if time.Now().After(deadline) {
			unix.Close(fd)
			return nil, fmt.Errorf("repository %s is locked by another process: %w", r.path, errdefs.ErrConflict)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// openLock opens (creating it if need be) the repository's .lock. With
// readOnly, a user who may read but not write the repository opens an
// existing .lock read-only, enough for a shared lock, as libostree does
// in a repository it cannot write, and gets fd -1 (no lock to take) when
// there is none. Otherwise the error names the file and what is needed.
func (r *Repo) openLock(readOnly bool) (int, error) {
	p := filepath.Join(r.path, ".lock")
	fd, err := unix.Open(p, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o644)
	if err == nil {
		return fd, nil
	}
	if readOnly && (errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS)) {
		fd, rerr := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if rerr == nil {
			return fd, nil
		}
		if errors.Is(rerr, unix.ENOENT) {
			// Nobody has ever written here (a writer creates .lock),
			// and this user cannot: there is no lock to share.
			return -1, nil
		}
	}
	if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EROFS) {
		return -1, fmt.Errorf("opening repository lock %s: %w (writing to repository %s needs write access to it: run as its owner or root; reading does not)", p, err, r.path)
	}
	return -1, fmt.Errorf("opening repository lock %s: %w", p, err)
}

// LockExclusive takes the repository lock exclusively (no transaction may
// run meanwhile), for prune and similar whole-repository work.
func (r *Repo) LockExclusive() (unlock func(), err error) { return r.lock(true) }

func bootID() string {
	if v := os.Getenv("OSTREE_BOOTID"); v != "" {
		return v
	}
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return "unknown"
	}
	return strings.ReplaceAll(strings.TrimSpace(string(b)), "-", "")
}
