package sysext

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/osrelease"
)

// Source says where an extension comes from.
type Source string

const (
	// SourceAdded: an image placed by Add in systemd-sysext's directory,
	// the same for every deployment.
	SourceAdded Source = "added"
	// SourceFollowed: per-OS-version images fetched at each upgrade.
	SourceFollowed Source = "followed"
)

// Status is what List says of one extension on one OS.
type Status struct {
	Name    string           `json:"name"`
	Source  Source           `json:"source"`
	Path    string           `json:"path,omitempty"`    // the image for this OS, if any
	Release osrelease.Values `json:"release,omitempty"` // its extension-release
	// Versions are the OS versions a followed extension has images for.
	Versions []string `json:"versions,omitempty"`
	// Matches says systemd-sysext merges it on this OS (Match); Reason
	// says why not.
	Matches bool   `json:"matches"`
	Reason  string `json:"reason,omitempty"`
	// Merged is set when the running system's /usr carries the
	// extension's release file (the caller looks; see Merged).
	Merged *bool `json:"merged,omitempty"`
}

// List reports every extension of the store as seen by an OS whose
// os-release is host on architecture arch: followed ones by their image
// for host's VERSION_ID, added ones by inspecting them. An added image
// with the name of a followed one that matches is shadowed (the
// runtime directory comes first in systemd-sysext's search).
func (s Store) List(host osrelease.Values, arch string) ([]Status, error) {
	var out []Status
	followed, err := s.Followed()
	if err != nil {
		return nil, err
	}
	linked := map[string]bool{}
	for _, n := range followed {
		st := s.followedStatus(n, host, arch)
		linked[n] = st.Matches
		out = append(out, st)
	}
	added, err := s.added()
	if err != nil {
		return nil, err
	}
	for _, n := range added {
		st := Status{Name: n, Source: SourceAdded, Path: s.addedPath(n)}
		img, err := Inspect(st.Path)
		switch {
		case err != nil:
			st.Reason = err.Error()
		case linked[n]:
			st.Release, st.Reason = img.Release, "shadowed by the followed image of the same name"
		default:
			st.Release = img.Release
			if err := Match(img.Release, host, arch); err != nil {
				st.Reason = err.Error()
			} else {
				st.Matches = true
			}
		}
		out = append(out, st)
	}
	return out, nil
}

func (s Store) followedStatus(name string, host osrelease.Values, arch string) Status {
	st := Status{Name: name, Source: SourceFollowed}
	st.Versions, _ = s.Versions(name)
	v := host["VERSION_ID"]
	if CheckVersion("VERSION_ID", v) != nil {
		st.Reason = fmt.Sprintf("the OS has no usable VERSION_ID (%q) to pick an image by", v)
		return st
	}
	p := s.FollowedPath(name, v)
	rel, err := readRelease(p)
	if errors.Is(err, fs.ErrNotExist) {
		st.Reason = fmt.Sprintf("no image for VERSION_ID %s (none was published for it when the node upgraded; held: %s)", v, orNone(st.Versions))
		return st
	}
	if err != nil {
		st.Reason = fmt.Sprintf("reading %s: %v", p+releaseSuffix, err)
		return st
	}
	st.Path, st.Release = p, rel
	if err := Match(rel, host, arch); err != nil {
		st.Reason = err.Error()
		return st
	}
	st.Matches = true
	return st
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// Merged says whether the system mounted at root has extension name
// merged: its /usr carries the extension's release file, which only the
// extension ships.
func Merged(root, name string) bool {
	_, err := os.Lstat(filepath.Join(root, ReleasePath(name)))
	return err == nil
}

// Link makes systemd-sysext see, for the OS whose os-release is host, the
// followed images that match it: a symbolic link runDir/NAME.raw to each
// (runDir is /run/extensions, which systemd-sysext searches before
// /var/lib/extensions). Links of runDir into the store that no longer
// match are removed; nothing else there is touched. Followed extensions
// without a matching image get no link, so a mismatched image is never
// merged. It returns the followed extensions' status and runs at every
// boot before systemd-sysext.service (strata-sysext.service).
func (s Store) Link(host osrelease.Values, arch, runDir string) ([]Status, error) {
	followed, err := s.Followed()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return nil, fmt.Errorf("linking extensions: %w", err)
	}
	var out []Status
	want := map[string]string{}
	for _, n := range followed {
		st := s.followedStatus(n, host, arch)
		if st.Matches {
			want[n+".raw"] = st.Path
		}
		out = append(out, st)
	}
	des, err := os.ReadDir(runDir)
	if err != nil {
		return nil, fmt.Errorf("linking extensions: %w", err)
	}
	store := filepath.Join(s.Var, FollowedDir) + "/"
	for _, d := range des {
		p := filepath.Join(runDir, d.Name())
		t, err := os.Readlink(p)
		if err != nil || !strings.HasPrefix(t, store) || want[d.Name()] == t {
			continue
		}
		if err := os.Remove(p); err != nil {
			return nil, fmt.Errorf("unlinking extension %s: %w", d.Name(), err)
		}
	}
	for file, target := range want {
		p := filepath.Join(runDir, file)
		if t, err := os.Readlink(p); err == nil && t == target {
			continue
		}
		tmp := p + ".tmp"
		os.Remove(tmp)
		if err := os.Symlink(target, tmp); err != nil {
			return nil, fmt.Errorf("linking extension %s: %w", file, err)
		}
		if err := os.Rename(tmp, p); err != nil {
			return nil, fmt.Errorf("linking extension %s: %w", file, err)
		}
	}
	return out, nil
}
