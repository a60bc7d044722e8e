package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/schedule"
)

// ConfigDirs are the agent's drop-in directories, lowest priority first: the OS's defaults, the
// admin's, and runtime ones. Zincati's own directories are read too, at the same priorities, so
// that a node moving from Zincati keeps its fragments unchanged. Paths are relative to the root.
var ConfigDirs = [][]string{
	{"usr/lib/zincati/config.d", "usr/lib/strata/agent.d"},
	{"etc/zincati/config.d", "etc/strata/agent.d"},
	{"run/zincati/config.d", "run/strata/agent.d"},
}

// Strategy names, as Zincati spells them, plus strata's conjunction of windows and the lock.
const (
	StrategyImmediate       = "immediate"
	StrategyFleetLock       = "fleet_lock"
	StrategyPeriodic        = "periodic"
	StrategyPeriodicAndLock = "periodic+fleet_lock"
)

// Config is the agent's merged configuration, in Zincati's keys.
type Config struct {
	Agent struct {
		Timing struct {
			SteadyIntervalSecs uint64 `toml:"steady_interval_secs"`
		} `toml:"timing"`
	} `toml:"agent"`
	Identity struct {
		Group           string   `toml:"group"`
		NodeUUID        string   `toml:"node_uuid"`
		RolloutWariness *float64 `toml:"rollout_wariness"`
	} `toml:"identity"`
	Cincinnati struct {
		BaseURL string `toml:"base_url"`
	} `toml:"cincinnati"`
	Updates struct {
		Enabled        *bool  `toml:"enabled"`
		AllowDowngrade bool   `toml:"allow_downgrade"`
		Strategy       string `toml:"strategy"`
		FleetLock      struct {
			BaseURL string `toml:"base_url"`
		} `toml:"fleet_lock"`
		Periodic struct {
			TimeZone string            `toml:"time_zone"`
			Window   []schedule.Window `toml:"window"`
		} `toml:"periodic"`
	} `toml:"updates"`
	// Sources lists the fragments read, in order, for status and errors.
	Sources []string `toml:"-"`
}

// Defaults are Zincati's shipped defaults (without a Cincinnati URL: a strata fleet names its
// own graph server).
func Defaults() Config {
	var c Config
	c.Agent.Timing.SteadyIntervalSecs = 300
	c.Identity.Group = "default"
	t := true
	c.Updates.Enabled = &t
	c.Updates.Strategy = StrategyImmediate
	return c
}

// LoadConfig reads the drop-ins under root: every *.toml of the directories above, merged by
// file name (a name in a higher-priority directory hides the same name below it; a link to
// /dev/null masks it), applied in the lexical order of the names, later keys winning. An unknown
// key is an error naming the file and the key.
func LoadConfig(root string) (Config, error) {
	chosen := map[string]string{} // base name → path
	for _, prio := range ConfigDirs {
		for _, dir := range prio {
			ents, err := os.ReadDir(filepath.Join(root, dir))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return Config{}, fmt.Errorf("reading %s: %w", dir, err)
			}
			for _, e := range ents {
				if !strings.HasSuffix(e.Name(), ".toml") || e.IsDir() {
					continue
				}
				chosen[e.Name()] = filepath.Join(root, dir, e.Name())
			}
		}
	}
	names := make([]string, 0, len(chosen))
	for n := range chosen {
		names = append(names, n)
	}
	sort.Strings(names)
	c := Defaults()
	for _, n := range names {
		p := chosen[n]
		if target, err := os.Readlink(p); err == nil && target == "/dev/null" {
			continue // masked
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return Config{}, fmt.Errorf("reading %s: %w", p, err)
		}
		if len(bytes.TrimSpace(data)) == 0 {
			continue
		}
		md, err := toml.Decode(string(data), &c)
		if err != nil {
			return Config{}, fmt.Errorf("%s: %v: %w", p, err, errdefs.ErrInvalid)
		}
		if und := md.Undecoded(); len(und) > 0 {
			keys := make([]string, len(und))
			for i, k := range und {
				keys[i] = k.String()
			}
			return Config{}, fmt.Errorf("%s: unknown key %s: %w", p, strings.Join(keys, ", "), errdefs.ErrInvalid)
		}
		c.Sources = append(c.Sources, p)
	}
	return c, c.Validate()
}

// Validate checks the merged configuration.
func (c Config) Validate() error {
	var errs []error
	switch c.Updates.Strategy {
	case StrategyImmediate:
	case StrategyFleetLock, StrategyPeriodicAndLock:
		if c.Updates.FleetLock.BaseURL == "" {
			errs = append(errs, fmt.Errorf("updates.strategy %q needs updates.fleet_lock.base_url", c.Updates.Strategy))
		}
	case StrategyPeriodic:
	default:
		errs = append(errs, fmt.Errorf("updates.strategy %q is not one of immediate, fleet_lock, periodic, periodic+fleet_lock", c.Updates.Strategy))
	}
	if c.Updates.Strategy == StrategyPeriodic || c.Updates.Strategy == StrategyPeriodicAndLock {
		cal, err := c.Calendar()
		if err != nil {
			errs = append(errs, fmt.Errorf("updates.periodic: %v", err))
		} else if cal.Length() == 0 {
			errs = append(errs, errors.New("updates.periodic: weekly calendar length is zero (add [[updates.periodic.window]])"))
		}
	}
	if c.Agent.Timing.SteadyIntervalSecs == 0 {
		errs = append(errs, errors.New("agent.timing.steady_interval_secs must be positive"))
	}
	if w := c.Identity.RolloutWariness; w != nil && (*w < 0 || *w > 1) {
		errs = append(errs, fmt.Errorf("identity.rollout_wariness %v is not between 0.0 and 1.0", *w))
	}
	if id := c.Identity.NodeUUID; id != "" {
		if _, err := ParseID(id); err != nil {
			errs = append(errs, fmt.Errorf("identity.node_uuid: %v", err))
		}
	}
	if c.Enabled() && c.Cincinnati.BaseURL == "" {
		errs = append(errs, errors.New("cincinnati.base_url is not set: name the release graph server"))
	}
	if len(errs) > 0 {
		return fmt.Errorf("agent configuration (%s): %w: %w", strings.Join(c.Sources, ", "), errors.Join(errs...), errdefs.ErrInvalid)
	}
	return nil
}

// Enabled reports whether automatic updates are on.
func (c Config) Enabled() bool { return c.Updates.Enabled == nil || *c.Updates.Enabled }

// Calendar returns the periodic strategy's windows.
func (c Config) Calendar() (schedule.Calendar, error) {
	return schedule.New(c.Updates.Periodic.TimeZone, c.Updates.Periodic.Window)
}

// SteadyInterval is the polling period in steady state.
func (c Config) SteadyInterval() time.Duration {
	return time.Duration(c.Agent.Timing.SteadyIntervalSecs) * time.Second
}

// Expand substitutes ${basearch}, ${group}, ${platform} and ${stream} in a URL template, as
// Zincati does; any other variable is an error.
func Expand(tmpl string, vars map[string]string) (string, error) {
	var b strings.Builder
	for {
		i := strings.Index(tmpl, "${")
		if i < 0 {
			b.WriteString(tmpl)
			return b.String(), nil
		}
		j := strings.IndexByte(tmpl[i:], '}')
		if j < 0 {
			return "", fmt.Errorf("unterminated ${ in %q: %w", tmpl, errdefs.ErrInvalid)
		}
		name := tmpl[i+2 : i+j]
		v, ok := vars[name]
		if !ok {
			return "", fmt.Errorf("unknown variable ${%s} in %q (known: basearch, group, platform, stream): %w", name, tmpl, errdefs.ErrInvalid)
		}
		b.WriteString(tmpl[:i])
		b.WriteString(v)
		tmpl = tmpl[i+j+1:]
	}
}
