package fleetsim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/agent"
	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/graph"
	"github.com/strata-os/strata/internal/graphserver"
	"github.com/strata-os/strata/internal/lockserver"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// node is one simulated machine: its deployments and its agent.
type node struct {
	id        string
	booted    agent.Release
	deployed  []string
	staged    *agent.Release
	rebooting *agent.Release
	dead      bool      // died while rebooting: never comes back
	upAt      time.Time // while rebooting: when the new boot is up
	a         *agent.Agent
	due       time.Time
}

func (n *node) Status(context.Context) (agent.NodeStatus, error) {
	return agent.NodeStatus{Booted: n.booted, Deployed: append([]string{}, n.deployed...)}, nil
}
func (n *node) DownloadSize(context.Context, agent.Release) (int64, error) { return 100 << 20, nil }
func (n *node) Stage(_ context.Context, r agent.Release, _ func(int64, int64)) error {
	n.staged = &r
	return nil
}
func (n *node) DropStaged(context.Context) error { n.staged = nil; return nil }
func (n *node) FinalizeAndReboot(_ context.Context, r agent.Release) error {
	if n.staged == nil || n.staged.Payload != r.Payload {
		return errors.New("not staged")
	}
	n.rebooting = n.staged
	return nil
}

// server runs a handler on a fixed loopback address, so that it can be stopped and started again
// at the same URL.
type server struct {
	addr string
	srv  *http.Server
}

func startServer(t *testing.T, addr string, h http.Handler) *server {
	t.Helper()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the old listener's port may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: ln.Addr().String(), srv: &http.Server{Handler: h}}
	go s.srv.Serve(ln)
	return s
}

func (s *server) stop() { s.srv.Close() }

const (
	fleet      = 500
	slots      = 5
	rebootTime = 2 * time.Minute
	stream     = "stable"
)

// TestFleet: 500 agents converge through a barrier to the newest release, never more than `slots`
// nodes between taking the lock and reporting steady state, the rollout's eligible share follows
// its ramp, a dead end is reported, the lock server restarts mid-rollout without granting a slot
// twice or losing a holder, and nodes that die holding a slot are released by the lease.
func TestFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("the fleet simulation takes about a minute; run without -short")
	}
	dir := t.TempDir()
	clk := &clock{t: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC)}
	t0 := clk.Now()

	// Releases 1..3 of "stable": 2 is a barrier, 3 rolls out from t0+30m over 60 minutes.
	// Stream "legacy" has one release, a dead end.
	var ri graph.ReleaseIndex
	for i := 1; i <= 3; i++ {
		ri.Releases = append(ri.Releases, graph.Release{Version: fmt.Sprint(i), Commits: []graph.Commit{{Architecture: "x86_64", Checksum: fmt.Sprintf("c%d", i)}}})
	}
	ri.Releases = append(ri.Releases, graph.Release{Version: "L", Commits: []graph.Commit{{Architecture: "x86_64", Checksum: "cL"}}})
	start, minutes, zero := t0.Add(30*time.Minute).Unix(), uint64(60), 0.0
	os.MkdirAll(filepath.Join(dir, "updates"), 0o755)
	writeJSON(t, filepath.Join(dir, "releases.json"), ri)
	writeJSON(t, filepath.Join(dir, "updates", "stable.json"), graph.Updates{Stream: stream, Releases: []graph.UpdateRelease{
		{Version: "2", Metadata: graph.UpdateMetadata{Barrier: &graph.Reason{}}},
		{Version: "3", Metadata: graph.UpdateMetadata{Rollout: &graph.Rollout{StartEpoch: &start, StartPercentage: &zero, DurationMinutes: &minutes}}},
	}})
	writeJSON(t, filepath.Join(dir, "updates", "legacy.json"), graph.Updates{Stream: "legacy", Releases: []graph.UpdateRelease{
		{Version: "L", Metadata: graph.UpdateMetadata{Deadend: &graph.Reason{Reason: "legacy is retired"}}},
	}})
	gs, err := graphserver.New(graphserver.Inputs{Releases: filepath.Join(dir, "releases.json"), Updates: filepath.Join(dir, "updates")}, graphserver.WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	graphSrv := startServer(t, "127.0.0.1:0", gs)
	defer graphSrv.stop()

	storePath := filepath.Join(dir, "lock.db")
	openLock := func() (lockserver.Store, *server, string) {
		st, err := lockserver.OpenBolt(storePath)
		if err != nil {
			t.Fatal(err)
		}
		ls := lockserver.New(st, lockserver.Config{DefaultSlots: slots, Lease: 30 * time.Minute}, clk.Now, nil)
		s := startServer(t, "127.0.0.1:0", ls)
		return st, s, s.addr
	}
	lockStore, lockSrv, lockAddr := openLock()
	defer func() { lockSrv.stop(); lockStore.Close() }()
	lockURL, _ := url.Parse("http://" + lockAddr + "/")

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}
	nodes := make([]*node, fleet+10)
	for i := range nodes {
		n := &node{id: fmt.Sprintf("%032x", i+1)}
		s := stream
		if i >= fleet {
			s = "legacy"
			n.booted = agent.Release{Version: "L", Payload: "cL"}
		} else {
			n.booted = agent.Release{Version: "1", Payload: "c1"}
		}
		n.deployed = []string{n.booted.Payload}
		n.a = newAgent(n, s, clk, graphSrv.addr, lockURL, hc)
		nodes[i] = n
	}
	// Three nodes die while rebooting into their first update, holding their slots.
	doomed := map[int]bool{7: true, 99: true, 401: true}

	ctx := context.Background()
	inFlight := map[string]bool{} // took a slot, not yet back in steady state
	maxInFlight, restarted := 0, false
	var rampChecks int
	for minute := 0; minute < 24*60; minute++ {
		now := clk.Now()
		if minute == 150 && !restarted { // mid-rollout: the lock server goes away and comes back
			holdersBefore := holders(t, lockStore)
			lockSrv.stop()
			lockStore.Close()
			lockStore, lockSrv, _ = openLock()
			if lockSrv.addr != lockAddr {
				lockSrv.stop()
				lockSrv = startServer(t, lockAddr, lockserver.New(lockStore, lockserver.Config{DefaultSlots: slots, Lease: 30 * time.Minute}, clk.Now, nil))
			}
			if after := holders(t, lockStore); fmt.Sprint(after) != fmt.Sprint(holdersBefore) {
				t.Fatalf("lock server restart: holders %v became %v", holdersBefore, after)
			}
			restarted = true
		}
		for i, n := range nodes {
			if n.dead || now.Before(n.due) {
				continue
			}
			for k := 0; k < 20; k++ {
				d := n.a.Step(ctx)
				st := n.a.Status()
				if st.State == agent.StateUpdateFinalized && n.rebooting != nil {
					inFlight[n.id] = true
					if doomed[i] {
						n.dead = true
						break
					}
					if n.upAt.IsZero() { // the reboot takes two minutes
						n.upAt, n.due = now.Add(rebootTime), now.Add(rebootTime)
						break
					}
					if now.Before(n.upAt) {
						break
					}
					// The node is up again: in the new release, with a new agent.
					n.deployed = append(n.deployed, n.rebooting.Payload)
					n.booted, n.staged, n.rebooting, n.upAt = *n.rebooting, nil, nil, time.Time{}
					n.a = newAgent(n, stream, clk, graphSrv.addr, lockURL, hc)
					continue
				}
				if st.State == agent.StateReportedSteady || st.State == agent.StateNoNewUpdate {
					delete(inFlight, n.id)
				}
				if d > 0 {
					n.due = now.Add(d)
					break
				}
			}
			// Never more than `slots` nodes between the lock and steady state.
			alive := countAlive(inFlight, nodes)
			maxInFlight = max(maxInFlight, alive)
			if alive > slots {
				t.Fatalf("minute %d: %d live nodes between pre-reboot and steady state, more than %d slots", minute, alive, slots)
			}
		}
		// The rollout's eligible share follows the ramp: of the nodes past the barrier (booted on
		// 2 or 3), those that target or run 3 are at most the throttled share now and at least the
		// share of 6 minutes ago (each polls every 5 minutes), within sampling error.
		if minute >= 35 && minute <= 85 && minute%10 == 5 {
			past, on3 := 0, 0
			for _, n := range nodes[:fleet] {
				if n.booted.Version == "1" || n.dead {
					continue
				}
				past++
				if st := n.a.Status(); n.booted.Version == "3" || (st.Target != nil && st.Target.Version == "3") {
					on3++
				}
			}
			r3 := graph.Node{Metadata: map[string]string{graph.KeyRollout: "true", graph.KeyStartEpoch: fmt.Sprint(start), graph.KeyStartValue: "0", graph.KeyDuration: "60"}}
			hi, lo := graph.Throttling(r3, now), graph.Throttling(r3, now.Add(-6*time.Minute))
			if past >= 50 {
				share := float64(on3) / float64(past)
				tol := max(0.05, 3*math.Sqrt(hi*(1-hi)/float64(past)))
				if share > hi+tol || share < lo-tol {
					t.Errorf("minute %d: %.3f of the %d nodes past the barrier target 3, want between %.3f and %.3f", minute, share, past, lo, hi)
				}
				rampChecks++
			}
		}
		clk.Add(time.Minute)
		if minute > 120 && minute%10 == 0 && converged(nodes[:fleet]) && len(holders(t, lockStore)) == 0 {
			break
		}
	}
	done, legacyDeadend := 0, 0
	for i, n := range nodes {
		switch {
		case i >= fleet:
			if n.a.Status().Deadend == "legacy is retired" {
				legacyDeadend++
			}
		case n.dead:
		case n.booted.Version == "3":
			done++
		default:
			t.Errorf("node %d ended on release %s in state %s (%s)", i, n.booted.Version, n.a.Status().State, n.a.Status().Waiting)
		}
		if i < fleet && !n.dead && len(n.deployed) != 3 {
			t.Errorf("node %d went through %v, want 1 → 2 → 3 (the barrier is not skipped)", i, n.deployed)
		}
	}
	if done != fleet-len(doomed) || legacyDeadend != 10 || rampChecks < 3 {
		t.Errorf("%d of %d live nodes on release 3; %d of 10 legacy nodes report the dead end; %d ramp checks", done, fleet-len(doomed), legacyDeadend, rampChecks)
	}
	if h := holders(t, lockStore); len(h) != 0 {
		t.Errorf("holders at the end = %v, want none (the dead nodes' leases expired)", h)
	}
	resp, err := http.Get("http://" + lockSrv.addr + "/v1/audit")
	if err != nil {
		t.Fatal(err)
	}
	var audit struct{ Records []lockserver.Record }
	json.NewDecoder(resp.Body).Decode(&audit)
	resp.Body.Close()
	expired := 0
	for _, r := range audit.Records {
		if r.Action == "lease-expired" {
			expired++
		}
	}
	if expired != len(doomed) {
		t.Errorf("%d lease-expired audit records, want %d (the dead nodes)", expired, len(doomed))
	}
	t.Logf("%d nodes converged through the barrier to release 3 in simulated %s; at most %d nodes between pre-reboot and steady state at once (%d slots)", done, clk.Now().Sub(t0), maxInFlight, slots)
	if maxInFlight < slots {
		t.Errorf("never more than %d nodes rebooting at once: the simulation did not exercise the %d slots", maxInFlight, slots)
	}
}

func converged(nodes []*node) bool {
	for _, n := range nodes {
		if !n.dead && n.booted.Version != "3" {
			return false
		}
	}
	return true
}

func countAlive(inFlight map[string]bool, nodes []*node) int {
	n := 0
	for _, nd := range nodes {
		if inFlight[nd.id] && !nd.dead {
			n++
		}
	}
	return n
}

func holders(t *testing.T, st lockserver.Store) []string {
	t.Helper()
	sem, _, err := st.Get(context.Background(), fleetlock.DefaultGroup)
	if err != nil {
		t.Fatal(err)
	}
	return sem.Holders
}

func newAgent(n *node, streamName string, clk *clock, graphAddr string, lockURL *url.URL, hc *http.Client) *agent.Agent {
	cfg := agent.Defaults()
	cfg.Cincinnati.BaseURL = "http://" + graphAddr + "/"
	lock := agent.FleetLock{Client: &fleetlock.Client{BaseURL: lockURL, HTTP: hc, Params: fleetlock.ClientParams{ID: n.id, Group: fleetlock.DefaultGroup}}}
	return agent.New(agent.Options{
		Config: cfg, Deployer: n, Strategy: lock, Now: clk.Now,
		Graph: &agent.GraphClient{BaseURL: cfg.Cincinnati.BaseURL, HTTP: hc, Basearch: "x86_64", Stream: streamName, Group: "default", NodeUUID: n.id},
	})
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
