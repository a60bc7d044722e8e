package repo

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/ostree"
)

func validateRefTarget(remote, name string) error {
	if remote != "" && (strings.ContainsAny(remote, "/:") || remote == "." || remote == "..") {
		return fmt.Errorf("remote name %q: %w", remote, errdefs.ErrInvalid)
	}
	return ostree.ValidateRef(name)
}

func (r *Repo) refPath(remote, name string) string {
	if remote == "" {
		return filepath.Join(r.path, "refs", "heads", name)
	}
	return filepath.Join(r.path, "refs", "remotes", remote, name)
}

func refLabel(remote, name string) string {
	if remote == "" {
		return name
	}
	return remote + ":" + name
}

// writeRef points a ref at c: write-temp, fsync, rename (libostree writes
// refs the same way; a reader sees the old or the new checksum).
func (r *Repo) writeRef(remote, name string, c ostree.Checksum) error {
	if err := validateRefTarget(remote, name); err != nil {
		return err
	}
	p := r.refPath(remote, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("writing ref %s: %w", refLabel(remote, name), err)
	}
	if err := fsutil.WriteFileAtomic(p, []byte(c.String()+"\n"), 0o644); err != nil {
		return fmt.Errorf("writing ref %s: %w", refLabel(remote, name), err)
	}
	return nil
}

func (r *Repo) deleteRef(remote, name string) error {
	if err := validateRefTarget(remote, name); err != nil {
		return err
	}
	err := os.Remove(r.refPath(remote, name))
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("ref %s: %w", refLabel(remote, name), errdefs.ErrNotFound)
	}
	return err
}

// SetRef points a local (remote "") or remote ref at c immediately. Use a
// transaction's SetRef when the ref must move only with new objects.
func (r *Repo) SetRef(remote, name string, c ostree.Checksum) error {
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	return r.writeRef(remote, name, c)
}

// DeleteRef removes a ref.
func (r *Repo) DeleteRef(remote, name string) error {
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	return r.deleteRef(remote, name)
}

// ReadRef returns the checksum a ref points to.
func (r *Repo) ReadRef(remote, name string) (ostree.Checksum, error) {
	if err := validateRefTarget(remote, name); err != nil {
		return ostree.Checksum{}, err
	}
	b, err := os.ReadFile(r.refPath(remote, name))
	if errors.Is(err, fs.ErrNotExist) {
		return ostree.Checksum{}, fmt.Errorf("ref %s: %w", refLabel(remote, name), errdefs.ErrNotFound)
	}
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("reading ref %s: %w", refLabel(remote, name), err)
	}
	c, err := ostree.ParseChecksum(strings.TrimSpace(string(b)))
	if err != nil {
		return c, fmt.Errorf("ref %s: %w", refLabel(remote, name), errdefs.ErrCorrupt)
	}
	return c, nil
}

// Ref is one entry of ListRefs.
type Ref struct {
	Remote   string // "" for refs/heads
	Name     string
	Checksum ostree.Checksum
}

// String returns "NAME" or "REMOTE:NAME".
func (f Ref) String() string { return refLabel(f.Remote, f.Name) }

// ListRefs lists local and remote refs, sorted by their text form.
func (r *Repo) ListRefs() ([]Ref, error) {
	var out []Ref
	walk := func(base, remote string) error {
		return filepath.WalkDir(base, func(p string, d fs.DirEntry, err error) error {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			if err != nil {
				return err
			}
			// Hidden entries are not refs: an atomic ref write that was
			// interrupted leaves its ".NAME.tmp-*" file behind, and
			// libostree skips them too.
			if strings.HasPrefix(d.Name(), ".") && p != base {
				if d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			name, _ := filepath.Rel(base, p)
			c, err := r.ReadRef(remote, filepath.ToSlash(name))
			if err != nil {
				return err
			}
			out = append(out, Ref{Remote: remote, Name: filepath.ToSlash(name), Checksum: c})
			return nil
		})
	}
	if err := walk(filepath.Join(r.path, "refs", "heads"), ""); err != nil {
		return nil, fmt.Errorf("listing refs: %w", err)
	}
	remotes, _ := os.ReadDir(filepath.Join(r.path, "refs", "remotes"))
	for _, d := range remotes {
		if d.IsDir() {
			if err := walk(filepath.Join(r.path, "refs", "remotes", d.Name()), d.Name()); err != nil {
				return nil, fmt.Errorf("listing refs: %w", err)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].String() < out[j].String() })
	return out, nil
}

// ResolveRev resolves a revision: a full checksum, a unique checksum
// prefix of a stored commit (at least 4 characters), a ref or
// "REMOTE:REF", each optionally followed by "^" (repeatable) for parents.
func (r *Repo) ResolveRev(rev string) (ostree.Checksum, error) {
	base, ups := rev, 0
	for strings.HasSuffix(base, "^") {
		base, ups = base[:len(base)-1], ups+1
	}
	c, err := r.resolveBase(base)
	if err != nil {
		return c, err
	}
	for i := 0; i < ups; i++ {
		cm, err := r.ReadCommit(c)
		if err != nil {
			return c, err
		}
		if cm.Parent.IsZero() {
			return c, fmt.Errorf("revision %q: commit %s has no parent: %w", rev, c, errdefs.ErrNotFound)
		}
		c = cm.Parent
	}
	return c, nil
}

func (r *Repo) resolveBase(rev string) (ostree.Checksum, error) {
	if ostree.IsChecksum(rev) {
		return ostree.ParseChecksum(rev)
	}
	if remote, name, err := ostree.ParseRefspec(rev); err == nil {
		c, err := r.ReadRef(remote, name)
		if err == nil || !errors.Is(err, errdefs.ErrNotFound) {
			return c, err
		}
		if remote == "" {
			// "origin/os/stable" may name refs/remotes/origin/os/stable.
			if i := strings.IndexByte(name, '/'); i > 0 {
				if c, err := r.ReadRef(name[:i], name[i+1:]); err == nil {
					return c, nil
				}
			}
		}
	}
	if len(rev) >= 4 && len(rev) < 64 && strings.Trim(rev, "0123456789abcdef") == "" {
		return r.resolvePrefix(rev)
	}
	return ostree.Checksum{}, fmt.Errorf("revision %q: no such ref or commit: %w", rev, errdefs.ErrNotFound)
}

func (r *Repo) resolvePrefix(prefix string) (ostree.Checksum, error) {
	dir := filepath.Join(r.path, "objects", prefix[:2])
	ents, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return ostree.Checksum{}, err
	}
	var found []string
	for _, e := range ents {
		name := prefix[:2] + e.Name()
		if strings.HasSuffix(name, ".commit") && strings.HasPrefix(name, prefix) {
			found = append(found, strings.TrimSuffix(name, ".commit"))
		}
	}
	switch len(found) {
	case 0:
		return ostree.Checksum{}, fmt.Errorf("revision %q: no such ref or commit: %w", prefix, errdefs.ErrNotFound)
	case 1:
		return ostree.ParseChecksum(found[0])
	}
	return ostree.Checksum{}, fmt.Errorf("revision %q is ambiguous (%d commits): %w", prefix, len(found), errdefs.ErrInvalid)
}
