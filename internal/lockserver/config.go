package lockserver

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/schedule"
)

// fileConfig is the TOML form of a server's settings, close to airlock's [lock] table:
//
//	[lock]
//	default_slots = 1
//	strict_groups = false
//	lease = "2h"
//
//	[[lock.groups]]
//	name = "workers"
//	slots = 2
//	time_zone = "Europe/Berlin"
//	[[lock.groups.window]]
//	days = ["Sat", "Sun"]
//	start_time = "02:00"
//	length_minutes = 180
type fileConfig struct {
	Lock struct {
		DefaultGroupName string `toml:"default_group_name"`
		DefaultSlots     uint64 `toml:"default_slots"`
		StrictGroups     bool   `toml:"strict_groups"`
		Lease            string `toml:"lease"`
		Groups           []struct {
			Name     string            `toml:"name"`
			Slots    uint64            `toml:"slots"`
			TimeZone string            `toml:"time_zone"`
			Window   []schedule.Window `toml:"window"`
		} `toml:"groups"`
	} `toml:"lock"`
}

// ParseConfig reads a server's TOML settings. Unknown keys are errors that name the key: a
// misspelt window must not silently never apply.
func ParseConfig(r io.Reader, name string) (Config, error) {
	var fc fileConfig
	md, err := toml.NewDecoder(r).Decode(&fc)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %v: %w", name, err, errdefs.ErrInvalid)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return Config{}, fmt.Errorf("%s: unknown keys: %s: %w", name, strings.Join(keys, ", "), errdefs.ErrInvalid)
	}
	cfg := Config{DefaultSlots: fc.Lock.DefaultSlots, StrictGroups: fc.Lock.StrictGroups, Groups: map[string]Group{}}
	if cfg.DefaultSlots == 0 {
		cfg.DefaultSlots = 1
	}
	if fc.Lock.Lease != "" {
		d, err := time.ParseDuration(fc.Lock.Lease)
		if err != nil || d <= 0 {
			return Config{}, fmt.Errorf("%s: lock.lease %q is not a positive duration such as \"2h\": %w", name, fc.Lock.Lease, errdefs.ErrInvalid)
		}
		cfg.Lease = d
	}
	if fc.Lock.DefaultGroupName != "" && fc.Lock.DefaultGroupName != fleetlock.DefaultGroup {
		cfg.Groups[fc.Lock.DefaultGroupName] = Group{Slots: cfg.DefaultSlots}
	}
	if cfg.StrictGroups {
		cfg.Groups[fleetlock.DefaultGroup] = Group{Slots: cfg.DefaultSlots}
	}
	for i, g := range fc.Lock.Groups {
		if !fleetlock.ValidGroup(g.Name) {
			return Config{}, fmt.Errorf("%s: lock.groups[%d]: name %q is not a valid group name: %w", name, i, g.Name, errdefs.ErrInvalid)
		}
		if g.Slots == 0 {
			g.Slots = cfg.DefaultSlots
		}
		cal, err := schedule.New(g.TimeZone, g.Window)
		if err != nil {
			return Config{}, fmt.Errorf("%s: lock.groups[%d] (%s): %w", name, i, g.Name, err)
		}
		if len(g.Window) > 0 && cal.Length() == 0 {
			return Config{}, fmt.Errorf("%s: lock.groups[%d] (%s): the windows cover no time: %w", name, i, g.Name, errdefs.ErrInvalid)
		}
		cfg.Groups[g.Name] = Group{Slots: g.Slots, Windows: cal}
	}
	return cfg, nil
}
