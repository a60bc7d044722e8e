package provision

import (
	"bytes"
	"cmp"
	"fmt"
	"os"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
	"github.com/coreos/ignition/v2/config/util"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/provconfig"
	"golang.org/x/sys/unix"
)

const (
	unitDir    = "etc/systemd/system"
	presetFile = "etc/systemd/system-preset/20-ignition.preset"
)

// unitSearchPath is where an enabled unit without contents is looked for, in systemd's order.
var unitSearchPath = []string{"etc/systemd/system", "usr/lib/systemd/system", "lib/systemd/system"}

// unitPlan is what one systemd.units entry (or a generated mount unit) does to the tree.
type unitPlan struct {
	path     string // JSON path
	name     string
	contents *string
	dropins  map[string]string
	enabled  *bool
	mask     *bool
	// links are the enablement symlinks (etc/systemd/system/X.wants/NAME -> unit file), made
	// when enabled so that the very first boot has the unit, whether or not systemd applies
	// presets on that boot.
	links map[string]string
}

// planUnits checks the units and computes their enablement symlinks from their [Install]
// sections (WantedBy, RequiredBy, Alias), read from the config's contents or from the unit
// file found in the tree.
func planUnits(r *root, cfg provconfig.Config) ([]unitPlan, error) {
	var plans []unitPlan
	for i, u := range cfg.Systemd.Units {
		p := unitPlan{path: fmt.Sprintf("$.systemd.units.%d", i), name: u.Name, contents: u.Contents,
			enabled: u.Enabled, mask: u.Mask, dropins: map[string]string{}}
		for _, d := range u.Dropins {
			// A dropin without contents writes nothing, as in Ignition 2.14.
			if d.Contents != nil {
				p.dropins[d.Name] = *d.Contents
			}
		}
		if util.IsTrue(u.Enabled) && !util.IsTrue(u.Mask) {
			links, err := enableLinks(r, u.Name, u.Contents)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p.path, err)
			}
			p.links = links
		}
		plans = append(plans, p)
	}
	return plans, nil
}

// enableLinks returns what `systemctl enable NAME` would link: symlink path (relative to the
// root) -> target.
func enableLinks(r *root, name string, contents *string) (map[string]string, error) {
	template := name
	if at := strings.Index(name, "@"); at >= 0 {
		if dot := strings.LastIndex(name, "."); dot > at {
			template = name[:at+1] + name[dot:]
		}
	}
	var data []byte
	target := "/" + path.Join(unitDir, name)
	if contents != nil {
		data = []byte(*contents)
	} else {
		found := false
		for _, dir := range unitSearchPath {
			for _, n := range []string{name, template} {
				d, ok, err := r.readFile(path.Join(dir, n))
				if err != nil {
					return nil, fmt.Errorf("reading unit %s: %w", n, err)
				}
				if ok {
					data, target, found = d, "/"+path.Join(dir, n), true
					break
				}
			}
			if found {
				break
			}
		}
		if !found {
			return nil, fmt.Errorf("unit %s is enabled but has no contents and is not in the tree: %w", name, errdefs.ErrNotFound)
		}
	}
	opts, err := unit.DeserializeOptions(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("parsing unit %s: %w: %w", name, err, errdefs.ErrInvalid)
	}
	links := map[string]string{}
	for _, o := range opts {
		if o.Section != "Install" {
			continue
		}
		for _, v := range strings.Fields(o.Value) {
			switch o.Name {
			case "WantedBy":
				links[path.Join(unitDir, v+".wants", name)] = target
			case "RequiredBy":
				links[path.Join(unitDir, v+".requires", name)] = target
			case "Alias":
				links[path.Join(unitDir, v)] = target
			}
		}
	}
	return links, nil
}

// applyUnits writes unit files and dropins, masks, enablement symlinks and the preset file.
func applyUnits(r *root, plans []unitPlan) error {
	var presets []string
	for _, p := range plans {
		rel := path.Join(unitDir, p.name)
		if p.contents != nil {
			if err := r.writeFile(rel, []byte(*p.contents), 0o644, 0, 0); err != nil {
				return fmt.Errorf("%s.contents: %w", p.path, err)
			}
		}
		for _, d := range sortedKeys(p.dropins) {
			if err := r.writeFile(path.Join(unitDir, p.name+".d", d), []byte(p.dropins[d]), 0o644, 0, 0); err != nil {
				return fmt.Errorf("%s.dropins: %w", p.path, err)
			}
		}
		if p.enabled != nil {
			if *p.enabled {
				presets = append(presets, "enable "+presetName(p.name))
			} else {
				presets = append(presets, "disable "+presetName(p.name))
				if err := removeEnableLinks(r, p.name); err != nil {
					return fmt.Errorf("%s.enabled: %w", p.path, err)
				}
			}
		}
		for _, l := range sortedKeys(p.links) {
			if err := replaceSymlink(r, l, p.links[l]); err != nil {
				return fmt.Errorf("%s.enabled: %w", p.path, err)
			}
		}
		if p.mask != nil {
			if *p.mask {
				if err := replaceSymlink(r, rel, "/dev/null"); err != nil {
					return fmt.Errorf("%s.mask: %w", p.path, err)
				}
			} else if t, err := readlinkRoot(r, rel); err == nil && t == "/dev/null" {
				if err := r.removeAll(rel); err != nil {
					return fmt.Errorf("%s.mask: %w", p.path, err)
				}
			}
		}
	}
	if len(presets) == 0 {
		return nil
	}
	// Ignition sorts the preset lines; instances of one template share a line there, here
	// each instance has its own, which systemd reads the same way.
	sort.Strings(presets)
	old, _, err := r.readFile(presetFile)
	if err != nil {
		return fmt.Errorf("$.systemd.units: reading %s: %w", presetFile, err)
	}
	// Lines already there (a run repeated after a crash) are not added again.
	have := strings.Split(string(old), "\n")
	presets = slices.DeleteFunc(presets, func(l string) bool { return slices.Contains(have, l) })
	if len(presets) == 0 {
		return nil
	}
	data := append(old, []byte(strings.Join(presets, "\n")+"\n")...)
	if err := r.writeFile(presetFile, data, 0o644, 0, 0); err != nil {
		return fmt.Errorf("$.systemd.units: %w", err)
	}
	return nil
}

// presetName is the preset line's unit: "echo@.service bar" for the instance echo@bar.service.
func presetName(name string) string {
	at, dot := strings.Index(name, "@"), strings.LastIndex(name, ".")
	if at < 0 || dot < at {
		return name
	}
	return name[:at+1] + name[dot:] + " " + name[at+1:dot]
}

// replaceSymlink makes rel a symlink to target, replacing what was there.
func replaceSymlink(r *root, rel, target string) error {
	if t, err := readlinkRoot(r, rel); err == nil && t == target {
		return nil
	}
	if err := r.removeAll(rel); err != nil {
		return err
	}
	pfd, name, err := r.parent(rel, true)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	if err := unix.Symlinkat(target, pfd, name); err != nil {
		return &os.PathError{Op: "symlink", Path: "/" + rel, Err: err}
	}
	return nil
}

// removeEnableLinks removes the symlinks to a unit in etc/systemd/system/*.wants and
// *.requires (what systemctl disable removes).
func removeEnableLinks(r *root, name string) error {
	fd, err := r.open(unitDir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return nil
	}
	d := os.NewFile(uintptr(fd), unitDir)
	names, _ := d.Readdirnames(-1)
	d.Close()
	for _, n := range names {
		if strings.HasSuffix(n, ".wants") || strings.HasSuffix(n, ".requires") {
			l := path.Join(unitDir, n, name)
			if st, ok, _ := r.lstat(l); ok && st.Mode&unix.S_IFMT == unix.S_IFLNK {
				if err := r.removeAll(l); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func sortedKeys[K comparable, V any](m map[K]V) []K {
	keys := make([]K, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b K) int { return cmp.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return keys
}
