package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/graph"
)

// State is where the agent is in its state machine (Zincati's states, by the same names).
type State string

const (
	StateStart           State = "start"
	StateInitialized     State = "initialized"
	StateReportedSteady  State = "reported_steady"
	StateNoNewUpdate     State = "no_new_update"
	StateUpdateAvailable State = "update_available"
	StateUpdateStaged    State = "update_staged"
	StateUpdateFinalized State = "update_finalized"
	StateDisabled        State = "disabled"
)

// Release is one release of the graph, as the agent sees it.
type Release struct {
	Version  string       `json:"version"`
	Payload  string       `json:"payload"`
	AgeIndex uint64       `json:"age_index"`
	Scheme   graph.Scheme `json:"scheme,omitempty"`
}

// NodeStatus is what the node's deployments say.
type NodeStatus struct {
	// Booted is the booted release (Payload: its commit checksum or image reference).
	Booted Release
	// Staged is the staged deployment's payload, if any.
	Staged string
	// Deployed lists the payloads of the node's finalized deployments, booted included: as in
	// Zincati they are never offered again as targets.
	Deployed []string
	// BlockedBy names what on the node keeps updates from being staged
	// (e.g. "layering": the packages layered on the base cannot be
	// installed on the new one), Blocked says why; both empty otherwise.
	BlockedBy, Blocked string
}

// Deployer is what the agent needs of the node: its status, and staging, dropping and
// finalizing a deployment. Stage fetches and verifies the release's content before it stages it;
// FinalizeAndReboot makes the staged deployment the default and reboots.
type Deployer interface {
	Status(ctx context.Context) (NodeStatus, error)
	// DownloadSize returns how many bytes staging r would fetch (known before the download).
	DownloadSize(ctx context.Context, r Release) (int64, error)
	Stage(ctx context.Context, r Release, progress func(done, total int64)) error
	DropStaged(ctx context.Context) error
	FinalizeAndReboot(ctx context.Context, r Release) error
}

// GraphSource fetches the release graph for this node, with the node's wariness (forceEager: 0).
type GraphSource interface {
	Graph(ctx context.Context, booted Release, forceEager bool) (graph.Graph, error)
}

// Sessions counts interactive login sessions (logind).
type Sessions interface {
	Active(ctx context.Context) (int, error)
}

// Tunables of the state machine, Zincati's values.
const (
	maxDeployAttempts = 12
	maxPostponements  = 10
	postponeInterval  = time.Minute
	busyInterval      = 5 * time.Minute
	finalizedInterval = 3 * time.Hour
)

// Options are an agent's parts.
type Options struct {
	Config   Config
	Deployer Deployer
	Graph    GraphSource
	Strategy Strategy
	Sessions Sessions // nil: never postpone
	Now      func() time.Time
	Log      *slog.Logger
	// StateDir keeps what must survive reboots: the release being rebooted into, and the releases
	// this node rolled back from (never tried again). "" keeps nothing (tests).
	StateDir string
	// MOTDPath, when set, is written with a notice while the booted release is a dead end.
	MOTDPath string
	// Idle, when set, is called by Run after every step, before it sleeps until the next one.
	// The daemon returns its garbage to the system there (docs/agent.md); a process that runs
	// many agents (the fleet simulation) leaves it unset.
	Idle func()
}

// Agent is the update agent's state machine. Step runs one transition; Run drives Step on a timer.
type Agent struct {
	opts Options

	mu        sync.Mutex
	st        Status
	target    *Release
	failCount int
	postpones int
	deny      map[string]string // payload → why
	applyNow  bool
	wake      chan struct{}
	metrics   metrics
	lastGraph graph.Graph
}

// Status is what `strata update status` shows.
type Status struct {
	State          State      `json:"state"`
	Strategy       string     `json:"strategy"`
	Booted         Release    `json:"booted"`
	Target         *Release   `json:"target,omitempty"`
	Waiting        string     `json:"waiting,omitempty"`
	DownloadBytes  int64      `json:"download_bytes,omitempty"`
	DownloadedByte int64      `json:"downloaded_bytes,omitempty"`
	LastCheck      *time.Time `json:"last_check,omitempty"`
	NextCheck      *time.Time `json:"next_check,omitempty"`
	LastError      string     `json:"last_error,omitempty"`
	Deadend        string     `json:"deadend,omitempty"`
	Denied         []string   `json:"denied,omitempty"`
	ApplyNow       bool       `json:"apply_now,omitempty"`
	// BlockedBy and Blocked: see NodeStatus; updates stay blocked until a
	// release can be staged.
	BlockedBy string `json:"updates_blocked_by,omitempty"`
	Blocked   string `json:"updates_blocked,omitempty"`
}

// New returns an agent in the start state.
func New(opts Options) *Agent {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	a := &Agent{opts: opts, deny: map[string]string{}, wake: make(chan struct{}, 1)}
	a.st.State = StateStart
	a.st.Strategy = opts.Strategy.Name()
	return a
}

// Status returns the agent's status.
func (a *Agent) Status() Status {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.st
	s.Denied = slices.Sorted(maps.Keys(a.deny))
	s.ApplyNow = a.applyNow
	if a.target != nil {
		t := *a.target
		s.Target = &t
	}
	return s
}

// Check asks for a graph poll now.
func (a *Agent) Check() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// ApplyNow makes the next update go through at once: the node's wariness is taken as 0 and the
// strategy and the session check are skipped, for this one update.
func (a *Agent) ApplyNow() {
	a.mu.Lock()
	a.applyNow = true
	a.mu.Unlock()
	a.Check()
}

func (a *Agent) set(f func(s *Status)) {
	a.mu.Lock()
	f(&a.st)
	a.mu.Unlock()
}

func (a *Agent) transition(to State, why string) {
	a.mu.Lock()
	from := a.st.State
	a.st.State, a.st.Waiting = to, why
	a.mu.Unlock()
	if from != to {
		a.metrics.stateChanges.Add(1)
		a.opts.Log.Info("state change", "from", from, "to", to, "why", why)
	}
}

// Step runs one transition of the state machine and returns when the next one is due.
func (a *Agent) Step(ctx context.Context) time.Duration {
	a.mu.Lock()
	state := a.st.State
	a.mu.Unlock()
	var next time.Duration
	var err error
	switch state {
	case StateStart:
		next, err = a.start(ctx)
	case StateInitialized:
		next, err = a.reportSteady(ctx)
	case StateReportedSteady, StateNoNewUpdate:
		next, err = a.poll(ctx)
	case StateUpdateAvailable:
		next, err = a.stage(ctx)
	case StateUpdateStaged:
		next, err = a.finalize(ctx)
	case StateUpdateFinalized, StateDisabled:
		next = finalizedInterval
	}
	a.set(func(s *Status) {
		if err != nil {
			s.LastError = err.Error()
		} else {
			s.LastError = ""
		}
		t := a.opts.Now().Add(next)
		s.NextCheck = &t
	})
	if err != nil {
		a.metrics.errors.Add(1)
		a.opts.Log.Error("update agent", "state", state, "err", err)
	}
	return next
}

// Run drives the state machine until ctx ends; Check and ApplyNow cut a wait short.
func (a *Agent) Run(ctx context.Context) error {
	for {
		d := a.Step(ctx)
		if a.opts.Idle != nil {
			a.opts.Idle()
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-a.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

func (a *Agent) steady() time.Duration { return a.opts.Config.SteadyInterval() }

func (a *Agent) start(ctx context.Context) (time.Duration, error) {
	if !a.opts.Config.Enabled() {
		a.transition(StateDisabled, "updates.enabled is false")
		return finalizedInterval, nil
	}
	ns, err := a.opts.Deployer.Status(ctx)
	if err != nil {
		return busyInterval, fmt.Errorf("reading the deployments: %w", err)
	}
	a.mu.Lock()
	for _, p := range ns.Deployed {
		if p != ns.Booted.Payload {
			a.deny[p] = "deployed on this node before"
		}
	}
	a.st.Booted = ns.Booted
	a.st.BlockedBy, a.st.Blocked = ns.BlockedBy, ns.Blocked
	a.mu.Unlock()
	// A reboot into a release that did not come up as the booted one: the node rolled back (boot
	// counting or a failed health check). Never try that release again.
	if rec, err := a.readAttempt(); err == nil && rec != nil {
		if rec.Payload != ns.Booted.Payload {
			a.opts.Log.Warn("the release this node rebooted into is not booted: it rolled back; not trying it again", "release", rec.Version, "payload", rec.Payload)
			a.mu.Lock()
			a.deny[rec.Payload] = "rolled back"
			a.mu.Unlock()
			if err := a.persistDeny(); err != nil {
				return busyInterval, err
			}
		}
		a.clearAttempt()
	}
	if err := a.loadDeny(); err != nil {
		return busyInterval, err
	}
	a.transition(StateInitialized, "")
	return 0, nil
}

func (a *Agent) reportSteady(ctx context.Context) (time.Duration, error) {
	if err := a.opts.Strategy.ReportSteady(ctx); err != nil {
		a.transition(StateInitialized, "reporting steady state to the fleet lock")
		return a.retryInterval(), fmt.Errorf("reporting steady state: %w", err)
	}
	a.transition(StateReportedSteady, "")
	return 0, nil
}

func (a *Agent) retryInterval() time.Duration { return min(a.steady(), busyInterval) }

// findUpdate picks the target: among the releases the graph leads to from the booted one, the
// one with the highest age_index (ties: version, then payload), never one denied, never an older
// one unless downgrades are allowed.
func (a *Agent) findUpdate(g graph.Graph, booted Release) (*Release, string, error) {
	cur := -1
	for i, n := range g.Nodes {
		if n.Payload == booted.Payload {
			cur = i
			break
		}
	}
	if cur < 0 {
		return nil, "", fmt.Errorf("the booted release %s (%s) is not in the graph", booted.Version, booted.Payload)
	}
	curAge, _ := g.Nodes[cur].AgeIndex()
	deadend := ""
	if dead, why := g.Nodes[cur].Deadend(); dead {
		deadend = why
	}
	var best *Release
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, i := range g.Successors(cur) {
		n := g.Nodes[i]
		if _, denied := a.deny[n.Payload]; denied {
			a.metrics.ignored.Add(1)
			continue
		}
		age, err := n.AgeIndex()
		if err != nil {
			continue
		}
		r := Release{Version: n.Version, Payload: n.Payload, AgeIndex: age, Scheme: n.Scheme()}
		if best == nil || r.AgeIndex > best.AgeIndex ||
			(r.AgeIndex == best.AgeIndex && (r.Version > best.Version || (r.Version == best.Version && r.Payload > best.Payload))) {
			best = &r
		}
	}
	if best != nil && best.AgeIndex <= curAge && !a.opts.Config.Updates.AllowDowngrade {
		a.opts.Log.Warn("the graph offers an older release; downgrades are not allowed", "target", best.Version)
		best = nil
	}
	return best, deadend, nil
}

func (a *Agent) poll(ctx context.Context) (time.Duration, error) {
	a.mu.Lock()
	booted, eager := a.st.Booted, a.applyNow
	a.mu.Unlock()
	a.metrics.checks.Add(1)
	now := a.opts.Now()
	a.set(func(s *Status) { s.LastCheck = &now })
	g, err := a.opts.Graph.Graph(ctx, booted, eager)
	if err != nil {
		a.metrics.checkErrors.Add(1)
		return a.steady(), fmt.Errorf("fetching the release graph: %w", err)
	}
	a.mu.Lock()
	a.lastGraph = g
	a.mu.Unlock()
	target, deadend, err := a.findUpdate(g, booted)
	if err != nil {
		return a.steady(), err
	}
	a.setDeadend(deadend)
	if target == nil {
		a.transition(StateNoNewUpdate, "")
		return a.steady(), nil
	}
	size, err := a.opts.Deployer.DownloadSize(ctx, *target)
	if err != nil {
		a.opts.Log.Warn("cannot tell the download size", "err", err)
		size = 0
	}
	a.mu.Lock()
	a.target, a.failCount = target, 0
	a.st.DownloadBytes, a.st.DownloadedByte = size, 0
	a.mu.Unlock()
	a.transition(StateUpdateAvailable, "")
	return 0, nil
}

func (a *Agent) setDeadend(why string) {
	a.mu.Lock()
	changed := a.st.Deadend != why
	a.st.Deadend = why
	a.mu.Unlock()
	if !changed || a.opts.MOTDPath == "" {
		return
	}
	if why == "" {
		os.Remove(a.opts.MOTDPath)
		return
	}
	msg := fmt.Sprintf("This release is a dead end: it will not be updated automatically (%s).\nMove the node to another release or stream by hand (strata rebase / strata deploy).\n", why)
	if err := os.MkdirAll(filepath.Dir(a.opts.MOTDPath), 0o755); err == nil {
		fsutil.WriteFileAtomic(a.opts.MOTDPath, []byte(msg), 0o644)
	}
}

func (a *Agent) stage(ctx context.Context) (time.Duration, error) {
	a.mu.Lock()
	target := *a.target
	a.mu.Unlock()
	a.metrics.deployAttempts.Add(1)
	err := a.opts.Deployer.Stage(ctx, target, func(done, total int64) {
		a.set(func(s *Status) { s.DownloadedByte, s.DownloadBytes = done, max(total, s.DownloadBytes) })
	})
	// What blocks updates on the node is known once staging ran.
	if ns, serr := a.opts.Deployer.Status(ctx); serr == nil {
		a.set(func(s *Status) { s.BlockedBy, s.Blocked = ns.BlockedBy, ns.Blocked })
	}
	if err != nil {
		a.metrics.deployFailures.Add(1)
		a.mu.Lock()
		a.failCount++
		n := a.failCount
		a.mu.Unlock()
		if n >= maxDeployAttempts {
			// Not offered again until the agent restarts: a release that cannot be staged must not
			// be retried in a loop.
			a.mu.Lock()
			a.target = nil
			a.deny[target.Payload] = fmt.Sprintf("staging failed %d times", n)
			a.mu.Unlock()
			a.transition(StateNoNewUpdate, fmt.Sprintf("gave up on %s after %d failed attempts", target.Version, n))
			return a.steady(), fmt.Errorf("staging %s (attempt %d, giving up): %w", target.Version, n, err)
		}
		return busyInterval, fmt.Errorf("staging %s (attempt %d of %d): %w", target.Version, n, maxDeployAttempts, err)
	}
	a.mu.Lock()
	a.postpones = maxPostponements
	a.mu.Unlock()
	a.transition(StateUpdateStaged, "")
	return 0, nil
}

func (a *Agent) finalize(ctx context.Context) (time.Duration, error) {
	a.mu.Lock()
	target, booted, now, eager := *a.target, a.st.Booted, a.opts.Now(), a.applyNow
	a.mu.Unlock()
	// A staged update goes stale when a newer release appears: look again before rebooting.
	if g, err := a.opts.Graph.Graph(ctx, booted, eager); err == nil {
		a.metrics.checks.Add(1)
		if newer, _, err := a.findUpdate(g, booted); err == nil && newer != nil && newer.AgeIndex > target.AgeIndex {
			a.opts.Log.Info("a newer release appeared; replacing the staged one", "staged", target.Version, "newer", newer.Version)
			if err := a.opts.Deployer.DropStaged(ctx); err != nil {
				return busyInterval, fmt.Errorf("dropping the stale staged deployment: %w", err)
			}
			a.mu.Lock()
			a.target, a.failCount = newer, 0
			a.mu.Unlock()
			a.transition(StateUpdateAvailable, "a newer release replaces the staged one")
			return 0, nil
		}
	}
	if !eager {
		ok, why, err := a.opts.Strategy.CanFinalize(ctx, now)
		if err != nil {
			a.transition(StateUpdateStaged, "asking the strategy")
			return a.retryInterval(), fmt.Errorf("strategy %s: %w", a.opts.Strategy.Name(), err)
		}
		if !ok {
			a.metrics.blocked.Add(1)
			a.transition(StateUpdateStaged, why)
			return a.retryInterval(), nil
		}
		if a.opts.Sessions != nil {
			n, err := a.opts.Sessions.Active(ctx)
			a.mu.Lock()
			left := a.postpones
			a.mu.Unlock()
			if err == nil && n > 0 && left > 0 {
				a.mu.Lock()
				a.postpones--
				a.mu.Unlock()
				a.metrics.postponed.Add(1)
				a.transition(StateUpdateStaged, fmt.Sprintf("%d interactive sessions: reboot postponed (%d more times at most)", n, left-1))
				return postponeInterval, nil
			}
		}
	}
	if err := a.recordAttempt(target); err != nil {
		return busyInterval, err
	}
	a.metrics.finalizeAttempts.Add(1)
	if err := a.opts.Deployer.FinalizeAndReboot(ctx, target); err != nil {
		a.clearAttempt()
		return busyInterval, fmt.Errorf("finalizing %s: %w", target.Version, err)
	}
	a.mu.Lock()
	a.applyNow = false
	a.mu.Unlock()
	a.transition(StateUpdateFinalized, "rebooting into "+target.Version)
	return finalizedInterval, nil
}

// The files of the state directory.
const (
	attemptFile = "rebooting-into.json"
	denyFile    = "rolled-back.json"
)

func (a *Agent) recordAttempt(r Release) error {
	if a.opts.StateDir == "" {
		return nil
	}
	if err := os.MkdirAll(a.opts.StateDir, 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(r)
	return fsutil.WriteFileAtomic(filepath.Join(a.opts.StateDir, attemptFile), b, 0o644)
}

func (a *Agent) readAttempt() (*Release, error) {
	if a.opts.StateDir == "" {
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(a.opts.StateDir, attemptFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r Release
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", attemptFile, err)
	}
	return &r, nil
}

func (a *Agent) clearAttempt() {
	if a.opts.StateDir != "" {
		os.Remove(filepath.Join(a.opts.StateDir, attemptFile))
	}
}

// persistDeny writes the releases this node rolled back from; the list outlives reboots.
func (a *Agent) persistDeny() error {
	if a.opts.StateDir == "" {
		return nil
	}
	a.mu.Lock()
	var rolled []string
	for p, why := range a.deny {
		if why == "rolled back" {
			rolled = append(rolled, p)
		}
	}
	a.mu.Unlock()
	slices.Sort(rolled)
	if err := os.MkdirAll(a.opts.StateDir, 0o755); err != nil {
		return err
	}
	b, _ := json.Marshal(rolled)
	return fsutil.WriteFileAtomic(filepath.Join(a.opts.StateDir, denyFile), b, 0o644)
}

func (a *Agent) loadDeny() error {
	if a.opts.StateDir == "" {
		return nil
	}
	b, err := os.ReadFile(filepath.Join(a.opts.StateDir, denyFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var rolled []string
	if err := json.Unmarshal(b, &rolled); err != nil {
		return fmt.Errorf("%s: %w", denyFile, err)
	}
	a.mu.Lock()
	for _, p := range rolled {
		a.deny[p] = "rolled back"
	}
	a.mu.Unlock()
	return nil
}
