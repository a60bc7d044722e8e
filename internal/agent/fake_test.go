package agent

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/strata-os/strata/internal/graph"
)

// fakeNode is a node's deployments: what Stage and FinalizeAndReboot do to them is recorded, and
// a "reboot" is done by the test (boot).
type fakeNode struct {
	mu        sync.Mutex
	booted    Release
	staged    *Release
	deployed  []string
	stageErr  error
	blockedBy string   // what keeps updates from being staged (NodeStatus.BlockedBy)
	rebooting *Release // set by FinalizeAndReboot
	stages    int
	drops     int
}

func (f *fakeNode) Status(context.Context) (NodeStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ns := NodeStatus{Booted: f.booted, Deployed: append([]string{}, f.deployed...), BlockedBy: f.blockedBy}
	if f.blockedBy != "" {
		ns.Blocked = "blocked by " + f.blockedBy
	}
	if f.staged != nil {
		ns.Staged = f.staged.Payload
	}
	return ns, nil
}

func (f *fakeNode) DownloadSize(context.Context, Release) (int64, error) { return 1000, nil }

func (f *fakeNode) Stage(_ context.Context, r Release, progress func(int64, int64)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.stages++
	if f.stageErr != nil {
		f.blockedBy = "layering"
		return f.stageErr
	}
	f.blockedBy = ""
	progress(1000, 1000)
	f.staged = &r
	return nil
}

func (f *fakeNode) DropStaged(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drops++
	f.staged = nil
	return nil
}

func (f *fakeNode) FinalizeAndReboot(_ context.Context, r Release) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.staged == nil || f.staged.Payload != r.Payload {
		return errors.New("finalizing a release that is not staged")
	}
	f.rebooting = f.staged
	return nil
}

// boot "reboots" the node: into the finalized release, or (rollback) back into the old one.
func (f *fakeNode) boot(rollback bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.rebooting != nil && !rollback {
		f.deployed = append(f.deployed, f.rebooting.Payload)
		f.booted = *f.rebooting
	}
	f.staged, f.rebooting = nil, nil
}

// staticGraph serves a fixed graph.
type staticGraph struct {
	mu sync.Mutex
	g  graph.Graph
}

func (s *staticGraph) Graph(context.Context, Release, bool) (graph.Graph, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.g, nil
}

func (s *staticGraph) set(g graph.Graph) { s.mu.Lock(); s.g = g; s.mu.Unlock() }

// gate is a strategy whose answer the test sets.
type gate struct {
	mu     sync.Mutex
	open   bool
	steady int
}

func (g *gate) Name() string { return "test" }
func (g *gate) ReportSteady(context.Context) error {
	g.mu.Lock()
	g.steady++
	g.mu.Unlock()
	return nil
}
func (g *gate) CanFinalize(context.Context, time.Time) (bool, string, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open {
		return true, "", nil
	}
	return false, "gate closed", nil
}

type sessions struct{ n int }

func (s *sessions) Active(context.Context) (int, error) { return s.n, nil }
