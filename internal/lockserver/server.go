package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/schedule"
)

// Group is one group's settings.
type Group struct {
	Slots uint64
	// Windows, when not empty, are the only times at which the group's slots are granted.
	Windows schedule.Calendar
}

// Config is a server's settings.
type Config struct {
	// DefaultSlots is the slot count of a group that Groups does not list (at least 1).
	DefaultSlots uint64
	// Groups lists configured groups; with StrictGroups, other groups are refused
	// (unknown_group), as airlock refuses them.
	Groups       map[string]Group
	StrictGroups bool
	// Lease, when positive, releases a holder that has not reported steady state this long after
	// taking its slot (a node that died or failed its update), with a log line and an audit record.
	Lease time.Duration
}

// Server serves the FleetLock protocol and strata's group endpoints.
type Server struct {
	store Store
	cfg   Config
	now   func() time.Time
	log   *slog.Logger

	preReboot, steady, granted, refused, expired atomic.Int64
}

// New returns a server over store. now is the clock (time.Now outside tests).
func New(store Store, cfg Config, now func() time.Time, log *slog.Logger) *Server {
	if cfg.DefaultSlots == 0 {
		cfg.DefaultSlots = 1
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{store: store, cfg: cfg, now: now, log: log}
}

func (s *Server) group(name string) (Group, bool) {
	if g, ok := s.cfg.Groups[name]; ok {
		return g, true
	}
	if s.cfg.StrictGroups {
		return Group{}, false
	}
	return Group{Slots: s.cfg.DefaultSlots}, true
}

// ServeHTTP routes the endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/"+fleetlock.PathPreReboot && r.Method == http.MethodPost:
		s.preReboot.Add(1)
		s.serveLock(w, r, true)
	case r.URL.Path == "/"+fleetlock.PathSteady && r.Method == http.MethodPost:
		s.steady.Add(1)
		s.serveLock(w, r, false)
	case r.URL.Path == "/v1/audit" && r.Method == http.MethodGet:
		recs, err := s.store.Records(r.Context(), 1000)
		if err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"records": recs})
	case strings.HasPrefix(r.URL.Path, "/v1/groups/"):
		s.serveGroup(w, r)
	case r.URL.Path == "/metrics" && r.Method == http.MethodGet:
		s.serveMetrics(w, r)
	default:
		s.fail(w, &fleetlock.Error{Kind: "not_found", Value: r.Method + " " + r.URL.Path + " is not an endpoint of this server", Status: http.StatusNotFound})
	}
}

// Lock takes a slot for id in group: the protocol's pre-reboot.
func (s *Server) Lock(ctx context.Context, p fleetlock.ClientParams) error {
	g, ok := s.group(p.Group)
	if !ok {
		return &fleetlock.Error{Kind: fleetlock.KindUnknownGroup, Value: fmt.Sprintf("group %q is not configured", p.Group), Status: http.StatusBadRequest}
	}
	now := s.now()
	if !g.Windows.Empty() && !g.Windows.Contains(now) {
		// A holder asking again keeps its slot: the window only gates new grants.
		if sem, ok, err := s.store.Get(ctx, p.Group); err == nil && ok && sem.Holds(p.ID) {
			return nil
		}
		next, _ := g.Windows.Next(now)
		return &fleetlock.Error{Kind: fleetlock.KindWindowClosed,
			Value:  fmt.Sprintf("group %s reboots only in its maintenance windows; the next opens at %s", p.Group, next.UTC().Format(time.RFC3339)),
			Status: http.StatusConflict}
	}
	var expired []expiry
	var full error
	_, err := s.store.Update(ctx, p.Group, fleetlock.NewSemaphore(g.Slots), func(sem *fleetlock.Semaphore) (bool, error) {
		expired, full = expired[:0], nil
		changed := false
		if sem.TotalSlots != g.Slots { // the configured count wins (airlock keeps the first one)
			sem.TotalSlots, changed = g.Slots, true
		}
		for _, h := range sem.Expired(s.cfg.Lease, now) {
			expired = append(expired, expiry{id: h, held: now.Sub(time.Unix(sem.Acquired[h], 0))})
			sem.Unlock(h)
			changed = true
		}
		// A full semaphore still keeps the expiries above: they are written, then refused.
		locked, err := sem.Lock(p.ID, now)
		full = err
		return changed || locked, nil
	})
	if err != nil {
		return err
	}
	s.recordExpired(ctx, p.Group, expired)
	if full != nil {
		s.refused.Add(1)
		// airlock's words, without the error classes the semaphore wraps.
		value, _, _ := strings.Cut(full.Error(), ": ")
		return &fleetlock.Error{Kind: fleetlock.KindLockFull, Value: value, Status: http.StatusConflict}
	}
	s.granted.Add(1)
	return nil
}

type expiry struct {
	id   string
	held time.Duration
}

func (s *Server) recordExpired(ctx context.Context, group string, expired []expiry) {
	for _, e := range expired {
		s.expired.Add(1)
		s.log.Warn("released a reboot slot whose lease expired: the node never reported steady state",
			"group", group, "id", e.id, "held", e.held.Round(time.Second).String(), "lease", s.cfg.Lease.String())
		rec := Record{Time: s.now().UTC(), Group: group, ID: e.id, Action: "lease-expired", Held: e.held.Round(time.Second).String()}
		if err := s.store.Audit(ctx, rec); err != nil {
			s.log.Error("writing an audit record", "err", err)
		}
	}
}

// Unlock releases id's slot in group: the protocol's steady-state.
func (s *Server) Unlock(ctx context.Context, p fleetlock.ClientParams) error {
	g, ok := s.group(p.Group)
	if !ok {
		return &fleetlock.Error{Kind: fleetlock.KindUnknownGroup, Value: fmt.Sprintf("group %q is not configured", p.Group), Status: http.StatusBadRequest}
	}
	_, err := s.store.Update(ctx, p.Group, fleetlock.NewSemaphore(g.Slots), func(sem *fleetlock.Semaphore) (bool, error) {
		return sem.Unlock(p.ID), nil
	})
	return err
}

// ExpireLeases releases every holder whose lease ran out, in every group: run periodically so
// that a dead holder's slot comes back even when nobody asks for one.
func (s *Server) ExpireLeases(ctx context.Context) error {
	if s.cfg.Lease <= 0 {
		return nil
	}
	groups, err := s.store.Groups(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	var errs []error
	for _, name := range groups {
		g, _ := s.group(name)
		var expired []expiry
		_, err := s.store.Update(ctx, name, fleetlock.NewSemaphore(g.Slots), func(sem *fleetlock.Semaphore) (bool, error) {
			expired = expired[:0]
			for _, h := range sem.Expired(s.cfg.Lease, now) {
				expired = append(expired, expiry{id: h, held: now.Sub(time.Unix(sem.Acquired[h], 0))})
				sem.Unlock(h)
			}
			return len(expired) > 0, nil
		})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.recordExpired(ctx, name, expired)
	}
	return errors.Join(errs...)
}

func (s *Server) serveLock(w http.ResponseWriter, r *http.Request, lock bool) {
	p, err := fleetlock.ParseRequest(r)
	if err == nil {
		if lock {
			err = s.Lock(r.Context(), p)
		} else {
			err = s.Unlock(r.Context(), p)
		}
	}
	if err != nil {
		s.fail(w, err)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// GroupStatus is the answer of GET /v1/groups/GROUP.
type GroupStatus struct {
	Group      string   `json:"group"`
	TotalSlots uint64   `json:"total_slots"`
	Holders    []Holder `json:"holders"`
	// WindowOpen is whether the group's maintenance windows allow a grant now (true without
	// windows); NextWindow is when the next one opens, when closed.
	WindowOpen bool       `json:"window_open"`
	NextWindow *time.Time `json:"next_window,omitempty"`
}

// Holder is one slot's holder.
type Holder struct {
	ID    string     `json:"id"`
	Since *time.Time `json:"since,omitempty"`
}

func (s *Server) serveGroup(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, "/v1/groups/")
	name, action, _ := strings.Cut(rest, "/")
	if !fleetlock.ValidGroup(name) {
		s.fail(w, &fleetlock.Error{Kind: fleetlock.KindInvalidIdentity, Value: fmt.Sprintf("group %q is not a valid group name", name), Status: http.StatusBadRequest})
		return
	}
	g, ok := s.group(name)
	if !ok {
		s.fail(w, &fleetlock.Error{Kind: fleetlock.KindUnknownGroup, Value: fmt.Sprintf("group %q is not configured", name), Status: http.StatusNotFound})
		return
	}
	switch {
	case action == "" && r.Method == http.MethodGet:
		sem, found, err := s.store.Get(r.Context(), name)
		if err != nil {
			s.fail(w, err)
			return
		}
		st := GroupStatus{Group: name, TotalSlots: g.Slots, Holders: []Holder{}, WindowOpen: true}
		if found {
			for _, h := range sem.Holders {
				hd := Holder{ID: h}
				if at, ok := sem.Acquired[h]; ok {
					t := time.Unix(at, 0).UTC()
					hd.Since = &t
				}
				st.Holders = append(st.Holders, hd)
			}
		}
		if !g.Windows.Empty() && !g.Windows.Contains(s.now()) {
			st.WindowOpen = false
			if next, ok := g.Windows.Next(s.now()); ok {
				n := next.UTC()
				st.NextWindow = &n
			}
		}
		writeJSON(w, http.StatusOK, st)
	case action == "release" && r.Method == http.MethodPost:
		var body struct {
			ID     string `json:"id"`
			Reason string `json:"reason"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&body); err != nil || body.ID == "" || body.Reason == "" {
			s.fail(w, &fleetlock.Error{Kind: fleetlock.KindInvalidIdentity, Value: `a forced release needs a body {"id":..., "reason":...}`, Status: http.StatusBadRequest})
			return
		}
		var held time.Duration
		var was bool
		_, err := s.store.Update(r.Context(), name, fleetlock.NewSemaphore(g.Slots), func(sem *fleetlock.Semaphore) (bool, error) {
			if at, ok := sem.Acquired[body.ID]; ok {
				held = s.now().Sub(time.Unix(at, 0))
			}
			was = sem.Unlock(body.ID)
			return was, nil
		})
		if err != nil {
			s.fail(w, err)
			return
		}
		if !was {
			s.fail(w, &fleetlock.Error{Kind: "not_holder", Value: fmt.Sprintf("%s holds no slot of group %s", body.ID, name), Status: http.StatusNotFound})
			return
		}
		rec := Record{Time: s.now().UTC(), Group: name, ID: body.ID, Action: "forced-release", Reason: body.Reason}
		if held > 0 {
			rec.Held = held.Round(time.Second).String()
		}
		s.log.Warn("forced release of a reboot slot", "group", name, "id", body.ID, "reason", body.Reason)
		if err := s.store.Audit(r.Context(), rec); err != nil {
			s.fail(w, err)
			return
		}
		writeJSON(w, http.StatusOK, rec)
	default:
		s.fail(w, &fleetlock.Error{Kind: "not_found", Value: r.Method + " " + r.URL.Path + " is not an endpoint of this server", Status: http.StatusNotFound})
	}
}

func (s *Server) serveMetrics(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	counter("strata_fleetlock_pre_reboot_requests_total", "Requests to /v1/pre-reboot.", s.preReboot.Load())
	counter("strata_fleetlock_steady_state_requests_total", "Requests to /v1/steady-state.", s.steady.Load())
	counter("strata_fleetlock_granted_total", "Pre-reboot requests that got or kept a slot.", s.granted.Load())
	counter("strata_fleetlock_refused_full_total", "Pre-reboot requests refused because every slot was held.", s.refused.Load())
	counter("strata_fleetlock_lease_expired_total", "Holders released because their lease expired.", s.expired.Load())
	groups, err := s.store.Groups(r.Context())
	if err != nil {
		return
	}
	sort.Strings(groups)
	fmt.Fprintf(w, "# HELP strata_fleetlock_holders Slots held per group.\n# TYPE strata_fleetlock_holders gauge\n")
	for _, g := range groups {
		if sem, ok, err := s.store.Get(r.Context(), g); err == nil && ok {
			fmt.Fprintf(w, "strata_fleetlock_holders{group=%q} %d\n", g, len(sem.Holders))
		}
	}
	fmt.Fprintf(w, "# HELP strata_fleetlock_slots Slots per group.\n# TYPE strata_fleetlock_slots gauge\n")
	for _, g := range groups {
		cfg, _ := s.group(g)
		fmt.Fprintf(w, "strata_fleetlock_slots{group=%q} %d\n", g, cfg.Slots)
	}
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	var fe *fleetlock.Error
	if !errors.As(err, &fe) {
		fe = &fleetlock.Error{Kind: fleetlock.KindGeneric, Value: err.Error(), Status: http.StatusInternalServerError}
		switch {
		case errors.Is(err, errdefs.ErrConflict):
			fe.Kind, fe.Status = fleetlock.KindConflict, http.StatusConflict
		case errors.Is(err, errdefs.ErrUnavailable):
			fe.Kind, fe.Status = fleetlock.KindUnavailable, http.StatusServiceUnavailable
		}
	}
	if fe.Status == 0 {
		fe.Status = http.StatusInternalServerError
	}
	writeJSON(w, fe.Status, fe)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}
