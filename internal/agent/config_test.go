package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Zincati's full sample fragment, unchanged, in Zincati's own directory.
const zincatiSample = `[agent.timing]
steady_interval_secs = 35
[identity]
group = "workers"
node_uuid = "27e3ac02af3946af995c9940e18b0cce"
rollout_wariness = 0.5
[cincinnati]
base_url = "http://cincinnati.example.com:80/"
[updates]
allow_downgrade = true
enabled = false
strategy = "fleet_lock"
[updates.fleet_lock]
base_url = "http://fleet-lock.example.com:8080/"
[updates.periodic]
time_zone = "localtime"
[[updates.periodic.window]]
days = [ "Sat", "Sun" ]
start_time = "23:00"
length_minutes = 120
[[updates.periodic.window]]
days = [ "Wed" ]
start_time = "23:30"
length_minutes = 25
`

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "usr/lib/zincati/config.d/00-config-sample.toml"), zincatiSample)
	c, err := LoadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Agent.Timing.SteadyIntervalSecs != 35 || c.Identity.Group != "workers" || *c.Identity.RolloutWariness != 0.5 ||
		c.Enabled() || c.Updates.Strategy != StrategyFleetLock || len(c.Updates.Periodic.Window) != 2 || !c.Updates.AllowDowngrade {
		t.Errorf("LoadConfig(Zincati's sample) = %+v", c)
	}
	// Precedence: /etc over /usr/lib by name; later names override earlier keys; /run over /etc.
	writeFile(t, filepath.Join(root, "etc/strata/agent.d/00-config-sample.toml"), "[identity]\ngroup = \"admins\"\n[cincinnati]\nbase_url = \"http://g/\"\n")
	writeFile(t, filepath.Join(root, "usr/lib/strata/agent.d/50-updates.toml"), "[updates]\nstrategy = \"immediate\"\n")
	writeFile(t, filepath.Join(root, "run/strata/agent.d/60-runtime.toml"), "[identity]\ngroup = \"runtime\"\n")
	c, err = LoadConfig(root)
	if err != nil {
		t.Fatal(err)
	}
	if c.Identity.Group != "runtime" || c.Agent.Timing.SteadyIntervalSecs != 300 || c.Updates.Strategy != StrategyImmediate || len(c.Sources) != 3 {
		t.Errorf("merged config = group %q interval %d strategy %q sources %v", c.Identity.Group, c.Agent.Timing.SteadyIntervalSecs, c.Updates.Strategy, c.Sources)
	}
	// A link to /dev/null masks a same-named fragment below it.
	if err := os.MkdirAll(filepath.Join(root, "run/strata/agent.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/null", filepath.Join(root, "run/strata/agent.d/50-updates.toml")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(root, "etc/strata/agent.d/10-strategy.toml"), "[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays = [\"Mon\"]\nstart_time = \"01:00\"\nlength_minutes = 60\n")
	c, err = LoadConfig(root)
	if err != nil || c.Updates.Strategy != StrategyPeriodic {
		t.Errorf("with 50-updates.toml masked: strategy %q, %v; want periodic", c.Updates.Strategy, err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ frag, want string }{
		"misspelt key":     {"[updates]\nstratgy = \"immediate\"\n", "unknown key updates.stratgy"},
		"misspelt window":  {"[updates]\nstrategy = \"periodic\"\n[[updates.periodic.windows]]\ndays=[\"Mon\"]\n", "unknown key"},
		"no windows":       {"[updates]\nstrategy = \"periodic\"\n", "calendar length is zero"},
		"unknown strategy": {"[updates]\nstrategy = \"yolo\"\n", "not one of"},
		"lock without url": {"[updates]\nstrategy = \"fleet_lock\"\n", "fleet_lock.base_url"},
		"bad wariness":     {"[identity]\nrollout_wariness = 2.0\n", "rollout_wariness"},
		"bad node uuid":    {"[identity]\nnode_uuid = \"xyz\"\n", "node_uuid"},
		"zero interval":    {"[agent.timing]\nsteady_interval_secs = 0\n", "steady_interval_secs"},
		"not toml":         {"[updates\n", "10-x.toml"},
		"bad window day":   {"[updates]\nstrategy = \"periodic\"\n[[updates.periodic.window]]\ndays=[\"Funday\"]\nstart_time=\"01:00\"\nlength_minutes=5\n", "Funday"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFile(t, filepath.Join(root, "usr/lib/strata/agent.d/00-base.toml"), "[cincinnati]\nbase_url = \"http://g/\"\n")
			writeFile(t, filepath.Join(root, "etc/strata/agent.d/10-x.toml"), tc.frag)
			_, err := LoadConfig(root)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("LoadConfig = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"basearch": "x86_64", "group": "g", "platform": "qemu", "stream": "stable"}
	if got, err := Expand("http://u/${stream}/${basearch}/", vars); err != nil || got != "http://u/stable/x86_64/" {
		t.Errorf("Expand = %q, %v", got, err)
	}
	if _, err := Expand("http://u/${nope}/", vars); err == nil {
		t.Error("Expand accepted an unknown variable")
	}
}

// The node id is systemd's app-specific machine id for Zincati's app id (this vector was computed
// by `systemd-id128 machine-id -a de35106b6ec24688b63afddaa156679b`).
func TestAppSpecificID(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeFile(t, filepath.Join(root, "etc/machine-id"), "3d1219c7c4c5404aaa1f6d2a48adfda4\n")
	id, err := NodeID(root, Defaults())
	if err != nil || id != "975228d46dc94622b9bbe16671e2b58d" {
		t.Errorf("NodeID = %q, %v; want 975228d46dc94622b9bbe16671e2b58d", id, err)
	}
	cfg := Defaults()
	cfg.Identity.NodeUUID = "27E3AC02AF3946AF995C9940E18B0CCE"
	if id, err := NodeID(root, cfg); err != nil || id != "27e3ac02af3946af995c9940e18b0cce" {
		t.Errorf("NodeID with node_uuid = %q, %v", id, err)
	}
}
