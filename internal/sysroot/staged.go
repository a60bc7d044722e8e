package sysroot

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
)

// stagedRecord is the file (StagedPath) that records a staged
// deployment, the counterpart of libostree's
// /run/ostree/staged-deployment a{sv} (target, merge-deployment, kargs).
type stagedRecord struct {
	Target stagedRef  `json:"target"`
	Merge  *stagedRef `json:"merge-deployment,omitempty"`
	// Kargs are the kernel arguments to use; nil inherits those of the
	// merge deployment at Finalize.
	Kargs []string `json:"kargs,omitempty"`
	// Locked keeps Finalize from writing the deployment into the boot
	// configuration (libostree's staged-deployment-locked): an update agent
	// stages ahead of time and unlocks only when its strategy allows the
	// reboot, so a reboot for another reason does not take the update early.
	Locked bool `json:"locked,omitempty"`
}

// stagedRef names a deployment as libostree's serialized deployment does.
type stagedRef struct {
	Name     string `json:"name"` // CHECKSUM.SERIAL
	OSName   string `json:"osname"`
	BootCsum string `json:"bootcsum"`
}

func refOf(d Deployment) stagedRef {
	return stagedRef{Name: d.Name(), OSName: d.OSName, BootCsum: d.BootChecksum}
}

// readStaged loads the staged record; a record whose deployment directory
// is gone (an interrupted stage or finalize) counts as none.
func (s *Sysroot) readStaged(ds []Deployment) (*stagedRecord, Deployment, error) {
	data, err := os.ReadFile(s.opts.stagedPath)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Deployment{}, nil
	}
	if err != nil {
		return nil, Deployment{}, fmt.Errorf("reading staged deployment record: %w", err)
	}
	var rec stagedRecord
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, Deployment{}, fmt.Errorf("parsing staged deployment record %s: %w: %w", s.opts.stagedPath, err, errdefs.ErrCorrupt)
	}
	csum, serial, err := parseDeployName(rec.Target.Name)
	if err != nil {
		return nil, Deployment{}, fmt.Errorf("staged deployment record %s: %w", s.opts.stagedPath, err)
	}
	d := Deployment{OSName: rec.Target.OSName, Checksum: csum, Serial: serial, BootChecksum: rec.Target.BootCsum, Staged: true, ostreePos: -1}
	if validateOSName(d.OSName) != nil {
		return nil, Deployment{}, fmt.Errorf("staged deployment record %s: stateroot %q: %w", s.opts.stagedPath, d.OSName, errdefs.ErrCorrupt)
	}
	if fi, err := os.Stat(s.abs(d.Path())); err != nil || !fi.IsDir() {
		return nil, Deployment{}, nil
	}
	d.Kargs = rec.Kargs
	if rec.Merge != nil {
		for _, m := range ds {
			if m.OSName != rec.Merge.OSName || m.Name() != rec.Merge.Name {
				continue
			}
			if rec.Kargs == nil {
				d.Kargs, d.ostreePos = m.Kargs, m.ostreePos
			} else {
				d.ostreePos = editedOstreePos(m.Kargs, m.ostreePos, rec.Kargs)
			}
		}
	}
	if err := s.fillDeployment(&d); err != nil {
		return nil, Deployment{}, err
	}
	return &rec, d, nil
}

func (s *Sysroot) writeStagedRecord(rec stagedRecord) error {
	data, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(s.opts.stagedPath), 0o755); err != nil {
		return fmt.Errorf("writing staged deployment record: %w", err)
	}
	if err := fsutil.WriteFileAtomic(s.opts.stagedPath, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("writing staged deployment record: %w", err)
	}
	return nil
}

func (s *Sysroot) removeStagedRecord() error {
	if err := os.Remove(s.opts.stagedPath); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing staged deployment record: %w", err)
	}
	return nil
}

// Finalize writes the staged deployment into the boot configuration, as
// ostree-finalize-staged.service does at shutdown
// (_ostree_sysroot_finalize_staged): it removes the staged record first
// (an interrupted finalize leaves an unreferenced directory, which the
// next cleanup removes, and the old default boots), merges /etc from the
// merge deployment recorded at stage time (so edits made since then are
// kept), writes the origin, seals the deployment, then writes the new
// deployment list [staged] + kept (Deploy's rule) and cleans up without
// pruning the repository. Without a staged deployment it does nothing
// and returns false.
//
// Steps: "staged-record-removed", "etc-merge", "origin", "immutable",
// then those of WriteDeployments and the cleanup ones but "prune".
func (s *Sysroot) Finalize(ctx context.Context) (Deployment, bool, error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return Deployment{}, false, err
	}
	defer unlock()
	staged, ok := s.Staged()
	if !ok {
		return Deployment{}, false, nil
	}
	rec := s.staged
	if rec.Locked {
		return staged, false, fmt.Errorf("finalizing %s: %w", staged.Path(), ErrStagedLocked)
	}
	var merge *Deployment
	if rec.Merge != nil {
		for _, d := range s.deployments[1:] {
			if d.OSName == rec.Merge.OSName && d.Name() == rec.Merge.Name {
				merge = &d
				break
			}
		}
		if merge == nil {
			return Deployment{}, false, fmt.Errorf("finalizing %s: merge deployment %s/%s is gone: %w", staged.Path(), rec.Merge.OSName, rec.Merge.Name, errdefs.ErrFailedPrecondition)
		}
	}
	if err := s.removeStagedRecord(); err != nil {
		return Deployment{}, false, err
	}
	if err := s.step(ctx, "staged-record-removed"); err != nil {
		return Deployment{}, false, err
	}
	nd := staged
	nd.Staged = false
	if err := s.finishDeployment(ctx, &nd, merge); err != nil {
		return Deployment{}, false, err
	}
	list := s.simpleList(nd, merge)
	if err := s.writeDeployments(ctx, list); err != nil {
		return Deployment{}, false, err
	}
	if _, err := s.cleanup(ctx, false); err != nil {
		return Deployment{}, false, err
	}
	out, _ := s.find(nd)
	return out, true, nil
}

// begin takes the sysroot lock and reloads the state.
func (s *Sysroot) begin(ctx context.Context) (func(), error) {
	unlock, err := s.lock(ctx)
	if err != nil {
		return nil, err
	}
	s.crashed = false
	if err := s.load(); err != nil {
		unlock()
		return nil, err
	}
	return unlock, nil
}

// find returns the loaded deployment that is d's directory.
func (s *Sysroot) find(d Deployment) (Deployment, bool) {
	for _, x := range s.deployments {
		if x.same(d) {
			return x, true
		}
	}
	return Deployment{}, false
}

// ErrStagedLocked is returned by Finalize when the staged deployment is locked: it stays staged,
// and the current default boots next.
var ErrStagedLocked = fmt.Errorf("the staged deployment is locked until an update agent unlocks it: %w", errdefs.ErrFailedPrecondition)

// UnlockStaged lets Finalize take the staged deployment (at the next shutdown).
func (s *Sysroot) UnlockStaged(ctx context.Context) error {
	unlock, err := s.begin(ctx)
	if err != nil {
		return err
	}
	defer unlock()
	if _, ok := s.Staged(); !ok {
		return fmt.Errorf("unlocking the staged deployment: none is staged: %w", errdefs.ErrNotFound)
	}
	rec := *s.staged
	rec.Locked = false
	return s.writeStagedRecord(rec)
}

// DropStaged forgets the staged deployment, if any, and removes its directory: the current
// default stays the next boot. It reports whether there was one.
func (s *Sysroot) DropStaged(ctx context.Context) (bool, error) {
	unlock, err := s.begin(ctx)
	if err != nil {
		return false, err
	}
	defer unlock()
	if _, ok := s.Staged(); !ok {
		return false, nil
	}
	if err := s.removeStagedRecord(); err != nil {
		return false, err
	}
	if err := s.load(); err != nil {
		return true, err
	}
	if _, err := s.cleanup(ctx, false); err != nil {
		return true, fmt.Errorf("removing the dropped staged deployment: %w", err)
	}
	return true, nil
}
