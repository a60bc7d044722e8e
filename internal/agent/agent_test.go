package agent

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/graph"
)

// linear returns a graph of releases 1..n with edges from every release to every newer one;
// deadend marks releases that are dead ends.
func linear(n int, deadend ...int) graph.Graph {
	var g graph.Graph
	for i := 1; i <= n; i++ {
		md := map[string]string{graph.KeyAgeIndex: fmt.Sprint(i - 1), graph.KeyScheme: "checksum"}
		for _, d := range deadend {
			if d == i {
				md[graph.KeyDeadend], md[graph.KeyDeadendReason] = "true", "moved to stream next"
			}
		}
		g.Nodes = append(g.Nodes, graph.Node{Version: fmt.Sprint(i), Payload: fmt.Sprintf("c%d", i), Metadata: md})
	}
	for i := 0; i < n; i++ {
		for j := i + 1; j < n; j++ {
			g.Edges = append(g.Edges, [2]int64{int64(i), int64(j)})
		}
	}
	return graph.FilterDeadends(g)
}

func rel(i int) Release {
	return Release{Version: fmt.Sprint(i), Payload: fmt.Sprintf("c%d", i), AgeIndex: uint64(i - 1), Scheme: "checksum"}
}

type harness struct {
	a     *Agent
	node  *fakeNode
	graph *staticGraph
	gate  *gate
	now   time.Time
	dir   string
}

func newHarness(t *testing.T, g graph.Graph, booted int) *harness {
	t.Helper()
	h := &harness{node: &fakeNode{booted: rel(booted), deployed: []string{rel(booted).Payload}},
		graph: &staticGraph{g: g}, gate: &gate{}, now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC), dir: t.TempDir()}
	h.restart(t)
	return h
}

func (h *harness) restart(t *testing.T) {
	cfg := Defaults()
	h.a = New(Options{Config: cfg, Deployer: h.node, Graph: h.graph, Strategy: h.gate, Now: func() time.Time { return h.now }, StateDir: h.dir})
}

// run steps the agent until it waits (a step returns a positive delay) n times.
func (h *harness) run(n int) {
	for i := 0; i < 50 && n > 0; i++ {
		if d := h.a.Step(context.Background()); d > 0 {
			n--
			h.now = h.now.Add(d)
		}
	}
}

func TestUpdateFlow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(3), 1)
	h.run(1)
	if st := h.a.Status(); st.State != StateUpdateStaged || st.Target == nil || st.Target.Version != "3" || st.Waiting != "gate closed" || st.DownloadBytes != 1000 {
		t.Fatalf("status = %+v, want release 3 staged, waiting on the strategy", st)
	}
	if h.gate.steady != 1 {
		t.Errorf("steady state reported %d times, want 1", h.gate.steady)
	}
	h.gate.open = true
	h.run(1)
	if st := h.a.Status(); st.State != StateUpdateFinalized || h.node.rebooting == nil || h.node.rebooting.Version != "3" {
		t.Fatalf("status = %+v, want finalized into 3", st)
	}
	// Reboot into 3: nothing newer, steady state reported again.
	h.node.boot(false)
	h.restart(t)
	h.run(1)
	if st := h.a.Status(); st.State != StateNoNewUpdate || st.Booted.Version != "3" || h.gate.steady != 2 {
		t.Errorf("after the reboot: %+v (steady reported %d times)", st, h.gate.steady)
	}
}

// A staged update is replaced when a newer release appears before the reboot.
func TestStaleStagedReplaced(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(2), 1)
	h.run(1)
	if st := h.a.Status(); st.State != StateUpdateStaged || st.Target.Version != "2" {
		t.Fatalf("status = %+v", st)
	}
	h.graph.set(linear(3))
	h.gate.open = true
	h.run(1)
	if h.node.drops != 1 || h.node.rebooting == nil || h.node.rebooting.Version != "3" {
		t.Errorf("drops %d, rebooting into %+v; want the staged 2 dropped and 3 finalized", h.node.drops, h.node.rebooting)
	}
}

// A release the node rolled back from is never tried again, across restarts.
func TestRollbackDenied(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(2), 1)
	h.gate.open = true
	h.run(1)
	if h.node.rebooting == nil {
		t.Fatal("not finalized")
	}
	h.node.boot(true) // boot counting fell back to 1
	h.restart(t)
	h.run(1)
	st := h.a.Status()
	if st.State != StateNoNewUpdate || len(st.Denied) != 1 || st.Denied[0] != "c2" {
		t.Fatalf("after a rollback: %+v, want no update and c2 denied", st)
	}
	h.restart(t) // the deny list is persistent
	h.run(2)
	if st := h.a.Status(); st.State != StateNoNewUpdate || h.node.stages != 1 {
		t.Errorf("after a restart: %+v, %d stages; want release 2 never staged again", st, h.node.stages)
	}
}

func TestDowngradeRefused(t *testing.T) {
	t.Parallel()
	g := linear(2)
	g.Edges = [][2]int64{{1, 0}} // the graph offers 2 → 1
	h := newHarness(t, g, 2)
	h.run(1)
	if st := h.a.Status(); st.State != StateNoNewUpdate || h.node.stages != 0 {
		t.Errorf("status = %+v, want no update (a downgrade is not allowed)", st)
	}
}

func TestDeadend(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(3, 1), 1)
	h.a.opts.MOTDPath = h.dir + "/motd.d/85-strata-deadend.motd"
	h.run(1)
	st := h.a.Status()
	if st.State != StateNoNewUpdate || st.Deadend != "moved to stream next" {
		t.Errorf("status = %+v, want no update and the dead end reported", st)
	}
	var b strings.Builder
	h.a.WriteMetrics(&b)
	if !strings.Contains(b.String(), "strata_agent_booted_release_is_deadend 1") {
		t.Error("metrics do not report the dead end")
	}
}

// A release the node's layered packages cannot be installed on: the
// status and the metrics say that updates are blocked and by what, until
// a release is staged.
func TestStageBlockedShown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(2), 1)
	h.node.stageErr = errors.New("updates blocked: the layered packages (tcpdump) cannot be applied to the new base")
	h.run(1)
	st := h.a.Status()
	var b strings.Builder
	h.a.WriteMetrics(&b)
	if st.BlockedBy != "layering" || st.Blocked == "" || !strings.Contains(b.String(), `strata_agent_updates_blocked{by="layering"} 1`) {
		t.Errorf("after a blocked stage: status %+v, metrics\n%s\nwant updates blocked by layering", st, b.String())
	}
	h.node.stageErr = nil
	h.run(1)
	b.Reset()
	h.a.WriteMetrics(&b)
	if st := h.a.Status(); st.BlockedBy != "" || !strings.Contains(b.String(), "strata_agent_updates_blocked 0") {
		t.Errorf("after a successful stage: status %+v, metrics\n%s\nwant nothing blocked", st, b.String())
	}
}

func TestStageFailuresGiveUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(2), 1)
	h.node.stageErr = errors.New("signature check failed")
	h.run(maxDeployAttempts + 1)
	if st := h.a.Status(); st.State != StateNoNewUpdate || h.node.stages != maxDeployAttempts || len(st.Denied) != 1 || st.Denied[0] != "c2" {
		t.Errorf("after %d failures: %+v", h.node.stages, st)
	}
}

// Logged-in users postpone the reboot, at most ten times; apply --now skips the strategy.
func TestSessionsAndApplyNow(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(2), 1)
	h.gate.open = true
	h.a.opts.Sessions = &sessions{n: 2}
	h.run(1)
	if st := h.a.Status(); st.State != StateUpdateStaged || !strings.Contains(st.Waiting, "2 interactive sessions") {
		t.Fatalf("with users logged in: %+v", st)
	}
	h.run(maxPostponements)
	if h.node.rebooting == nil {
		t.Errorf("still postponed after %d postponements", maxPostponements)
	}

	h2 := newHarness(t, linear(2), 1)
	h2.run(1)
	if h2.node.rebooting != nil {
		t.Fatal("finalized with the gate closed")
	}
	h2.a.ApplyNow()
	h2.run(1)
	if h2.node.rebooting == nil || h2.node.rebooting.Version != "2" {
		t.Errorf("apply --now did not go through: %+v", h2.a.Status())
	}
}

// TestRunCallsIdleAfterEveryStep: Run calls Options.Idle once after each step, before sleeping.
func TestRunCallsIdleAfterEveryStep(t *testing.T) {
	h := newHarness(t, linear(1), 1)
	idle := make(chan struct{}, 16)
	h.a.opts.Idle = func() { idle <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.a.Run(ctx) }()
	for i := 0; i < 3; i++ {
		select {
		case <-idle:
		case <-time.After(10 * time.Second):
			t.Fatalf("Idle called %d times in 10 s, want a call after every step", i)
		}
		h.a.Check() // the next step now, not after the steady interval
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Run = %v, want context.Canceled", err)
	}
}
