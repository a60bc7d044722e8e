//go:build root && peer && e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/graphserver"
	"github.com/strata-os/strata/internal/lockserver"
)

// fleet is the host side of automatic updates: the release graph and the reboot lock, served on
// loopback ports the guest reaches as 10.0.2.2.
type fleet struct {
	graphDir  string
	graphPort int
	lockPort  int
	store     lockserver.Store
	servers   []*http.Server
	operator  *fleetlock.Client // another holder of the group's only slot
}

func (e *env) startFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{graphDir: filepath.Join(e.work, "graph")}
	e.publishGraph(t, f)
	gs, err := graphserver.New(graphserver.Inputs{Releases: filepath.Join(f.graphDir, "releases.json"), Updates: filepath.Join(f.graphDir, "updates")},
		graphserver.WithReloadInterval(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if f.store, err = lockserver.OpenBolt(filepath.Join(e.work, "lock.db")); err != nil {
		t.Fatal(err)
	}
	ls := lockserver.New(f.store, lockserver.Config{DefaultSlots: 1}, time.Now, nil)
	listen := func(h http.Handler) int {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: h}
		go srv.Serve(ln)
		f.servers = append(f.servers, srv)
		return ln.Addr().(*net.TCPAddr).Port
	}
	f.graphPort, f.lockPort = listen(gs), listen(ls)
	u, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d/", f.lockPort))
	f.operator = &fleetlock.Client{BaseURL: u, Params: fleetlock.ClientParams{ID: "operator-laptop", Group: "default"}}
	return f
}

func (f *fleet) close() {
	for _, s := range f.servers {
		s.Close()
	}
	f.store.Close()
}

// publishGraph writes the graph's inputs from the repository's history.
func (e *env) publishGraph(t *testing.T, f *fleet) {
	t.Helper()
	e.strata(t, context.Background(), "graph-build", "graph", "build", "--repo", e.repo, "--ref", ref, "--stream", "e2e",
		"--out", f.graphDir, "--arch", "x86_64")
}

func (f *fleet) holders(t *testing.T) []string {
	t.Helper()
	sem, _, err := f.store.Get(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	return sem.Holders
}

// agentState returns the guest agent's status.
func (e *env) agentState(t *testing.T) (state, waiting string, denied []string) {
	t.Helper()
	status, out := e.exec(t, "strata update status --json")
	if status != 0 {
		return "", strings.TrimSpace(out), nil
	}
	var st struct {
		State   string   `json:"state"`
		Waiting string   `json:"waiting"`
		Denied  []string `json:"denied"`
	}
	if err := json.Unmarshal([]byte(lastJSON(out)), &st); err != nil {
		t.Fatalf("strata update status --json: %v\n%s", err, out)
	}
	return st.State, st.Waiting, st.Denied
}

func (e *env) waitAgent(t *testing.T, want string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		state, waiting, _ := e.agentState(t)
		if state == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the update agent is in state %q (%s), not %q, after %s", state, waiting, want, within)
		}
		time.Sleep(3 * time.Second)
	}
}

// agentV3 publishes a v3 whose health check fails in the release graph. The guest's update agent
// (fleet_lock strategy) stages it by itself but waits while another node holds the group's only
// reboot slot, without rebooting; once the slot is free it takes it and reboots into v3 by
// itself. v3 fails its health check three times, firmware falls back to v2, and there the agent
// gives the slot back and never offers v3 again.
//
// The agent's configuration (graph and lock server on the host, fleet_lock strategy) came with
// the first-boot config of the image step, so the agent has run since the first boot, finding
// nothing newer than the booted release in the graph until v3 is published here.
func (e *env) agentV3(t *testing.T) {
	v2 := bootedDeployment(t, e.status(t)).Name()
	f := e.fleet
	if out := strings.TrimSpace(e.mustExec(t, "systemctl is-active strata-agent.service || true")); out != "active" {
		t.Fatalf("strata-agent.service is %q on v2, want active: the provisioned configuration starts it", out)
	}
	// The operator holds the only slot before v3 is published.
	if err := f.operator.PreReboot(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.compose(t, "3")
	e.publishGraph(t, f)
	start := time.Now()
	e.waitAgent(t, "update_staged", 5*time.Minute)
	e.measure(t, "agent: v3 found in the graph, pulled and staged (locked) in %s", secs(time.Since(start)))
	// It waits for the slot and does not reboot.
	boots := len(e.m.Markers())
	time.Sleep(30 * time.Second)
	state, waiting, _ := e.agentState(t)
	if state != "update_staged" || !strings.Contains(waiting, "reboot slot") {
		t.Fatalf("with the slot held by another node the agent is %q (%s), want update_staged waiting for a slot", state, waiting)
	}
	for _, mk := range e.m.Markers()[boots:] {
		if mk.Name == "boot-start" {
			t.Fatalf("the guest rebooted while another node held the only slot")
		}
	}
	if st := e.status(t); st[0].Checksum != e.commits["3"] || !st[0].Staged {
		t.Fatalf("status while waiting = %+v, want v3 staged", st)
	}

	ctx, cancel := context.WithTimeout(context.Background(), fallbackTimeout)
	defer cancel()
	start = time.Now()
	if err := f.operator.SteadyState(ctx); err != nil {
		t.Fatal(err)
	}
	var tries []string
	for {
		bs, err := e.m.WaitMarker(ctx, "boot-start")
		if err != nil {
			t.Fatalf("boots so far %v; waiting for the next: %v", tries, err)
		}
		if len(tries) == 0 {
			e.measure(t, "agent: took the freed slot and rebooted into v3 %s after it was freed", secs(time.Since(start)))
			if h := f.holders(t); len(h) != 1 || h[0] == "operator-laptop" {
				t.Errorf("lock holders while rebooting = %v, want the guest", h)
			}
		}
		tries = append(tries, bs.Value)
		if bs.Value != "3" {
			b := e.finishBoot(t, ctx, bs)
			if b.Version != "2" || b.Deployment != v2 || b.BootComplete != "success" {
				t.Fatalf("after the fallback: version %s, deployment %s, boot-complete %s; want 2, %s, success",
					b.Version, b.Deployment, b.BootComplete, v2)
			}
			break
		}
		if len(tries) > 6 {
			t.Fatalf("boots %v: firmware does not fall back", tries)
		}
	}
	e.measure(t, "fallback: boots %v (versions), %s from the freed slot to v2's booted marker", tries, secs(time.Since(start)))
	if want := []string{"3", "3", "3", "2"}; strings.Join(tries, " ") != strings.Join(want, " ") {
		t.Errorf("boots = %v, want %v (three tries of v3, then v2)", tries, want)
	}
	st := e.status(t)
	if len(st) != 2 || !st[0].Booted || st[0].Name() != v2 || !st[1].Rollback || st[1].Version != "3" {
		t.Errorf("status after the fallback = %+v, want v2 booted and default, v3 rollback", st)
	}
	if ents := e.espEntries(t); !strings.Contains(ents[st[len(st)-1].Name()], "+0-3.conf") {
		t.Errorf("ESP entries = %v, want v3's entry marked bad (+0-3)", ents)
	}
	// Back on v2 the agent reported steady state (the slot is free) and never offers v3 again.
	e.waitAgent(t, "no_new_update", 3*time.Minute)
	if _, _, denied := e.agentState(t); !strings.Contains(strings.Join(denied, " "), e.commits["3"]) {
		t.Errorf("agent's deny list = %v, want v3 (%s)", denied, e.commits["3"])
	}
	if h := f.holders(t); len(h) != 0 {
		t.Errorf("lock holders after the fallback = %v, want none", h)
	}
	if out := e.mustExec(t, "journalctl -b -1 -u strata-boot-complete.service --no-pager"); !strings.Contains(out, "version 3 is unhealthy") {
		t.Errorf("journal of the boot before the fallback:\n%s\nwant the failed health check's message", out)
	}
}
