package repo

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// Txn is a write transaction. Objects are written into a private staging
// directory (tmp/staging-BOOTID-RANDOM) and become visible in objects/ only
// in Commit, after one syncfs; refs are written last. That is the single
// commit point of every write: a crash at any earlier moment leaves refs
// where they were and only unreachable, complete objects behind (docs/formats/repository.md).
//
// A staging directory left by a killed process of the same boot is adopted
// by the next transaction, so an interrupted pull or commit resumes without
// rewriting what it had; one from another boot is discarded, because its
// data may never have reached the disk.
//
// Txn methods are safe for concurrent use.
type Txn struct {
	r      *Repo
	dir    string
	dirFD  int
	unlock func()

	mu       sync.Mutex
	refs     []refUpdate
	mkdirs   map[string]bool
	finished bool
	// adopted is set when the staging directory was left by an earlier
	// transaction: only then can it hold objects that staged does not
	// list, and HasObject looks there on disk.
	adopted bool
	staged  map[ostree.ObjectName]struct{} // objects this transaction staged

	wb writeback
}

type refUpdate struct {
	remote, name string
	checksum     ostree.Checksum
	delete       bool
}

// Begin starts a transaction, holding the repository lock shared until
// Commit or Abort.
func (r *Repo) Begin() (*Txn, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	t := &Txn{r: r, unlock: unlock, mkdirs: map[string]bool{}, staged: map[ostree.ObjectName]struct{}{}, dirFD: -1}
	if err := t.openStaging(); err != nil {
		unlock()
		return nil, err
	}
	return t, nil
}

// openStaging adopts a staging directory of this boot that no live
// transaction holds, or creates one, and holds it locked until the
// transaction ends. Staging directories are 0700 (and tmp/ is created
// 0700): objects in them are not yet in the repository, and no other user
// has any business seeing them.
//
// Listing tmp/, locking a directory found there and creating a new one
// happen under an exclusive flock of tmp/ itself, so a new directory is
// never seen unlocked by another transaction, which would adopt or
// remove it. The flock is held for a directory listing only: stale
// directories are removed after it is released, still locked by us.
func (t *Txn) openStaging() error {
	tmp := filepath.Join(t.r.path, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("creating staging directory: %w", err)
	}
	tmpFD, err := unix.Open(tmp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", tmp, err)
	}
	var stale []int
	var stalePaths []string
	defer func() {
		for i, fd := range stale {
			os.RemoveAll(stalePaths[i])
			unix.Close(fd)
		}
	}()
	defer unix.Close(tmpFD) // releases the flock, before the stale directories go
	if err := flockRetry(tmpFD); err != nil {
		return fmt.Errorf("locking %s: %w", tmp, err)
	}
	prefix := "staging-" + bootID() + "-"
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if !e.IsDir() || !strings.HasPrefix(e.Name(), "staging-") {
			continue
		}
		p := filepath.Join(tmp, e.Name())
		fd, ok := tryLockDir(p)
		if !ok {
			continue // in use by a live transaction
		}
		if t.dirFD < 0 && strings.HasPrefix(e.Name(), prefix) {
			// Older versions made staging directories 0755.
			if err := unix.Fchmod(fd, 0o700); err != nil {
				unix.Close(fd)
				return fmt.Errorf("adopting staging directory %s: %w", p, err)
			}
			t.dir, t.dirFD, t.adopted = p, fd, true
			continue
		}
		stale, stalePaths = append(stale, fd), append(stalePaths, p)
	}
	if t.dirFD >= 0 {
		return nil
	}
	var rnd [6]byte
	rand.Read(rnd[:])
	p := filepath.Join(tmp, prefix+hex.EncodeToString(rnd[:]))
	if err := os.Mkdir(p, 0o700); err != nil {
		return fmt.Errorf("creating staging directory: %w", err)
	}
	fd, ok := tryLockDir(p)
	if !ok {
		os.Remove(p)
		return fmt.Errorf("internal error: cannot lock new staging directory %s", p)
	}
	t.dir, t.dirFD = p, fd
	return nil
}

// flockRetry takes an exclusive flock, retrying when a signal interrupts
// the wait.
func flockRetry(fd int) error {
	for {
		err := unix.Flock(fd, unix.LOCK_EX)
		if err != unix.EINTR {
			return err
		}
	}
}

func tryLockDir(p string) (int, bool) {
	fd, err := unix.Open(p, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, false
	}
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		unix.Close(fd)
		return -1, false
	}
	return fd, true
}

// Repo returns the transaction's repository.
func (t *Txn) Repo() *Repo { return t.r }

func (t *Txn) stagedPath(n ostree.ObjectName) string {
	return filepath.Join(t.dir, ostree.LoosePath(n.Checksum, n.Type, t.r.mode == ModeArchive))
}

// HasObject reports whether the object is in objects/ or already staged.
// A staging directory this transaction created holds only what it staged
// itself (no other process writes there: it is 0700 and locked), so that
// is looked up in memory; an adopted one is looked at on disk.
func (t *Txn) HasObject(n ostree.ObjectName) (bool, error) {
	if ok, err := t.r.HasObject(n); ok || err != nil {
		return ok, err
	}
	t.mu.Lock()
	_, staged := t.staged[n]
	t.mu.Unlock()
	if staged || !t.adopted {
		return staged, nil
	}
	_, err := os.Lstat(t.stagedPath(n))
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}

// ReadMetadata reads a metadata object from objects/ or the staging area
// and verifies it as Repo.ReadMetadata does.
func (t *Txn) ReadMetadata(typ ostree.ObjectType, c ostree.Checksum) ([]byte, error) {
	b, err := t.ReadMetadataUnverified(typ, c)
	if err != nil {
		return nil, err
	}
	if n := (ostree.ObjectName{Checksum: c, Type: typ}); verifiable(typ) {
		if err := verifyMetadata(n, b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// ReadMetadataUnverified reads a metadata object from objects/ or the
// staging area, checking only its size bound: the fast path for a caller
// that verifies the bytes right after (see Repo.ReadMetadataUnverified).
func (t *Txn) ReadMetadataUnverified(typ ostree.ObjectType, c ostree.Checksum) ([]byte, error) {
	b, err := t.r.ReadMetadataUnverified(typ, c)
	if errors.Is(err, errdefs.ErrNotFound) {
		n := ostree.ObjectName{Checksum: c, Type: typ}
		return readMetadataAt(t.stagedPath(n), n)
	}
	return b, err
}

// OpenContent opens a content object from objects/ or the staging area.
func (t *Txn) OpenContent(c ostree.Checksum) (*Content, error) {
	ct, err := t.r.OpenContent(c)
	if errors.Is(err, errdefs.ErrNotFound) {
		n := ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
		return openContentAt(t.r.mode, t.stagedPath(n), n)
	}
	return ct, err
}

// WriteMetadata stores a metadata object and returns its checksum. Writing
// an object that exists is a no-op.
func (t *Txn) WriteMetadata(typ ostree.ObjectType, data []byte) (ostree.Checksum, error) {
	c := ostree.MetadataChecksum(data)
	return c, t.writeMetadata(typ, c, data)
}

// WriteMetadataExpect stores a metadata object only if its bytes hash to
// want; otherwise nothing is stored and the error wraps errdefs.ErrCorrupt.
func (t *Txn) WriteMetadataExpect(typ ostree.ObjectType, want ostree.Checksum, data []byte) error {
	if got := ostree.MetadataChecksum(data); got != want {
		return fmt.Errorf("%s %s: content hashes to %s: %w", typ, want, got, errdefs.ErrCorrupt)
	}
	return t.writeMetadata(typ, want, data)
}

func (t *Txn) writeMetadata(typ ostree.ObjectType, c ostree.Checksum, data []byte) error {
	if !typ.IsMeta() || typ == ostree.ObjectCommitMeta {
		return fmt.Errorf("internal error: WriteMetadata of type %s", typ)
	}
	if len(data) > MaxMetadataSize {
		return fmt.Errorf("%s %s is larger than %d bytes: %w", typ, c, MaxMetadataSize, errdefs.ErrInvalid)
	}
	n := ostree.ObjectName{Checksum: c, Type: typ}
	if ok, err := t.HasObject(n); ok || err != nil {
		return err
	}
	return t.stageBytes(n, data)
}

// WriteCommitMeta replaces a commit's detached metadata (not content
// addressed, docs/formats/signatures.md).
func (t *Txn) WriteCommitMeta(c ostree.Checksum, data []byte) error {
	if _, err := ostree.ParseMetadata(data); err != nil {
		return fmt.Errorf("detached metadata of %s: %w", c, err)
	}
	return t.stageBytes(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommitMeta}, data)
}

// stageBytes stages a metadata object (commit, commitmeta, dirtree,
// dirmeta). Metadata objects are world-readable in every mode, as
// libostree makes them (fchmod 0644 in write_metadata_object): an archive
// repository is served by unprivileged web servers and read by non-root
// `ostree admin status` (docs/repository.md, "Object modes").
func (t *Txn) stageBytes(n ostree.ObjectName, data []byte) error {
	f, err := t.createTemp()
	if err != nil {
		return err
	}
	if err := f.chmod(metadataObjectMode); err != nil {
		f.discard()
		return fmt.Errorf("writing object %s: %w", n, err)
	}
	if _, err := f.Write(data); err != nil {
		f.discard()
		return fmt.Errorf("writing object %s: %w", n, err)
	}
	return t.placeFile(f, n)
}

// place renames a finished temp file to the object's staged path.
func (t *Txn) place(tmp string, n ostree.ObjectName) error {
	dst := t.stagedPath(n)
	sub := filepath.Dir(dst)
	t.mu.Lock()
	made := t.mkdirs[sub]
	t.mu.Unlock()
	if !made {
		if err := os.Mkdir(sub, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			os.Remove(tmp)
			return fmt.Errorf("staging object %s: %w", n, err)
		}
		t.mu.Lock()
		t.mkdirs[sub] = true
		t.mu.Unlock()
	}
	if err := os.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("staging object %s: %w", n, err)
	}
	t.markStaged(n)
	return nil
}

// markStaged records an object staged under its name.
func (t *Txn) markStaged(n ostree.ObjectName) {
	t.mu.Lock()
	t.staged[n] = struct{}{}
	t.mu.Unlock()
}

// SetRef records a ref update (remote "" for refs/heads) to apply at Commit.
func (t *Txn) SetRef(remote, name string, c ostree.Checksum) error {
	if err := validateRefTarget(remote, name); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.refs = append(t.refs, refUpdate{remote: remote, name: name, checksum: c})
	return nil
}

// Abort discards the transaction. Staged objects are removed.
func (t *Txn) Abort() error {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return nil
	}
	t.finished = true
	t.mu.Unlock()
	err := os.RemoveAll(t.dir)
	t.release()
	return err
}

// Suspend ends the transaction without committing or discarding it: the
// staged objects stay in the staging directory, which the next
// transaction of this boot adopts (an interrupted pull resumes from them),
// and ref updates are dropped.
func (t *Txn) Suspend() {
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return
	}
	t.finished = true
	t.mu.Unlock()
	t.release()
}

func (t *Txn) release() {
	t.stopWriteback() // (a Commit has returned its error already)
	if t.dirFD >= 0 {
		unix.Close(t.dirFD)
		t.dirFD = -1
	}
	t.unlock()
}

// hashWriter tees written bytes into a SHA-256 and counts them.
type hashWriter struct {
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func newHashWriter(header []byte) *hashWriter {
	h := &hashWriter{h: sha256.New()}
	h.h.Write(header)
	return h
}

func (h *hashWriter) Write(p []byte) (int, error) {
	h.n += int64(len(p))
	return h.h.Write(p)
}

func (h *hashWriter) sum() ostree.Checksum {
	var c ostree.Checksum
	h.h.Sum(c[:0])
	return c
}

var bufWriters = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 128<<10) }}
