package graphserver

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/strata-os/strata/internal/graph"
)

// Inputs locates a server's inputs: Releases is one releases.json for every stream, or a
// directory holding STREAM.json per stream; Updates is a directory holding STREAM.json per
// stream. The streams served are those of the updates directory.
type Inputs struct {
	Releases string
	Updates  string
}

// Server answers graph requests. Create it with New.
type Server struct {
	in     Inputs
	now    func() time.Time
	log    *slog.Logger
	reload time.Duration

	mu      sync.Mutex
	streams map[string]*stream
	stamp   string // the inputs' names, sizes and modification times when last read
	checked time.Time
	next    atomic.Int64 // s.checked + s.reload in Unix nanoseconds: the next check is due then
	loadErr error

	requests, errors atomic.Int64
}

type stream struct {
	releases graph.ReleaseIndex
	updates  graph.Updates
	mu       sync.RWMutex
	built    map[graph.Scope]*scoped
}

// Option configures a Server.
type Option func(*Server)

// WithClock sets the clock that rollouts are measured against.
func WithClock(now func() time.Time) Option { return func(s *Server) { s.now = now } }

// WithLogger sets where reloads and input errors are logged.
func WithLogger(l *slog.Logger) Option { return func(s *Server) { s.log = l } }

// WithReloadInterval sets how often the inputs' files are checked for changes (default 5 s).
func WithReloadInterval(d time.Duration) Option { return func(s *Server) { s.reload = d } }

// New reads the inputs and returns a server, or the error that makes the inputs unusable.
func New(in Inputs, opts ...Option) (*Server, error) {
	s := &Server{in: in, now: time.Now, log: slog.New(slog.DiscardHandler), reload: 5 * time.Second}
	for _, o := range opts {
		o(s)
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// Streams returns the names of the streams served.
func (s *Server) Streams() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for name := range s.streams {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// inputStamp describes the input files so that a change is noticed without reading them.
func (s *Server) inputStamp() (string, []string, error) {
	ents, err := os.ReadDir(s.in.Updates)
	if err != nil {
		return "", nil, fmt.Errorf("reading the updates directory: %w", err)
	}
	var b strings.Builder
	var names []string
	add := func(p string) {
		if fi, err := os.Stat(p); err == nil {
			fmt.Fprintf(&b, "%s %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
		} else {
			fmt.Fprintf(&b, "%s missing\n", p)
		}
	}
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || strings.HasPrefix(name, ".") || e.IsDir() {
			continue
		}
		names = append(names, name)
		add(filepath.Join(s.in.Updates, e.Name()))
		add(s.releasesPath(name))
	}
	return b.String(), names, nil
}

func (s *Server) releasesPath(streamName string) string {
	if fi, err := os.Stat(s.in.Releases); err == nil && fi.IsDir() {
		return filepath.Join(s.in.Releases, streamName+".json")
	}
	return s.in.Releases
}

// load reads every stream's inputs. On an error the streams served so far stay in place.
func (s *Server) load() error {
	stamp, names, err := s.inputStamp()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		return fmt.Errorf("no STREAM.json in the updates directory %s", s.in.Updates)
	}
	streams := map[string]*stream{}
	for _, name := range names {
		st, err := readStream(s.releasesPath(name), filepath.Join(s.in.Updates, name+".json"))
		if err != nil {
			return fmt.Errorf("stream %s: %w", name, err)
		}
		streams[name] = st
	}
	s.mu.Lock()
	s.streams, s.stamp, s.checked, s.loadErr = streams, stamp, s.now(), nil
	s.next.Store(s.checked.Add(s.reload).UnixNano())
	s.mu.Unlock()
	return nil
}

func readStream(releasesFile, updatesFile string) (*stream, error) {
	rf, err := os.Open(releasesFile)
	if err != nil {
		return nil, err
	}
	defer rf.Close()
	ri, err := graph.ParseReleaseIndex(rf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", releasesFile, err)
	}
	uf, err := os.Open(updatesFile)
	if err != nil {
		return nil, err
	}
	defer uf.Close()
	u, err := graph.ParseUpdates(uf)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", updatesFile, err)
	}
	return &stream{releases: ri, updates: u, built: map[graph.Scope]*scoped{}}, nil
}

// maybeReload rereads the inputs when their files changed, at most once per reload interval. A
// bad new input is logged and the previous graph keeps being served.
func (s *Server) maybeReload() {
	if s.now().UnixNano() < s.next.Load() {
		return // the common case, without the lock
	}
	s.mu.Lock()
	due := s.now().Sub(s.checked) >= s.reload
	if due {
		s.checked = s.now()
		s.next.Store(s.checked.Add(s.reload).UnixNano())
	}
	old := s.stamp
	s.mu.Unlock()
	if !due {
		return
	}
	stamp, _, err := s.inputStamp()
	if err != nil || stamp == old {
		return
	}
	if err := s.load(); err != nil {
		s.mu.Lock()
		s.loadErr, s.stamp = err, stamp // do not retry the same broken files every interval
		s.mu.Unlock()
		s.log.Error("graph inputs changed but cannot be used; serving the previous graph", "err", err)
		return
	}
	s.log.Info("graph inputs reloaded", "streams", s.Streams())
}

// scopedFor returns the unthrottled graph of a stream in a scope, with its answers.
func (s *Server) scopedFor(name string, scope graph.Scope) (*scoped, bool) {
	s.mu.Lock()
	st, ok := s.streams[name]
	s.mu.Unlock()
	if !ok {
		return nil, false
	}
	st.mu.RLock()
	sc := st.built[scope]
	st.mu.RUnlock()
	if sc != nil {
		return sc, true
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if sc = st.built[scope]; sc == nil {
		sc = newScoped(graph.Build(st.releases, st.updates, scope))
		if len(st.built) > 64 { // architectures are few; bound a client asking for many
			clear(st.built)
		}
		st.built[scope] = sc
	}
	return sc, true
}

// ServeHTTP routes the server's endpoints.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.requests.Add(1)
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		s.fail(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not supported; use GET")
		return
	}
	switch r.URL.Path {
	case "/v1/graph":
		s.serveGraph(w, r)
	case "/v1/eligibility":
		s.serveEligibility(w, r)
	case "/metrics":
		s.serveMetrics(w)
	default:
		s.fail(w, http.StatusNotFound, "not_found", "no such endpoint: "+r.URL.Path)
	}
}

// request is a parsed graph query.
type request struct {
	stream, basearch string
	scope            graph.Scope
	wariness         float64
	booted           string
}

func (s *Server) parse(w http.ResponseWriter, r *http.Request) (request, bool) {
	q := parseGraphQuery(r.URL.RawQuery)
	req := request{stream: q.stream, basearch: q.basearch, booted: q.checksum}
	if req.basearch == "" || req.stream == "" {
		s.fail(w, http.StatusBadRequest, "missing_params", "the query parameters basearch and stream are required")
		return req, false
	}
	oci := false
	if q.oci != "" {
		oci, _ = strconv.ParseBool(q.oci)
	}
	req.scope = graph.Scope{Basearch: req.basearch, OCI: oci}
	req.wariness = graph.Wariness(q.wariness, q.nodeUUID)
	return req, true
}

func (s *Server) serveGraph(w http.ResponseWriter, r *http.Request) {
	s.maybeReload()
	req, ok := s.parse(w, r)
	if !ok {
		return
	}
	sc, ok := s.scopedFor(req.stream, req.scope)
	if !ok {
		s.fail(w, http.StatusNotFound, "unknown_stream", fmt.Sprintf("no stream %q here (streams: %s)", req.stream, strings.Join(s.Streams(), ", ")))
		return
	}
	a, err := sc.answerFor(req.wariness, s.now())
	if err != nil {
		s.fail(w, http.StatusInternalServerError, "internal", err.Error())
		return
	}
	a.write(w, r)
}

// EligibilityAnswer is the body of GET /v1/eligibility.
type EligibilityAnswer struct {
	Stream   string              `json:"stream"`
	Wariness float64             `json:"wariness"`
	Releases []graph.Eligibility `json:"releases"`
}

func (s *Server) serveEligibility(w http.ResponseWriter, r *http.Request) {
	s.maybeReload()
	req, ok := s.parse(w, r)
	if !ok {
		return
	}
	sc, ok := s.scopedFor(req.stream, req.scope)
	if !ok {
		s.fail(w, http.StatusNotFound, "unknown_stream", fmt.Sprintf("no stream %q here", req.stream))
		return
	}
	ans := EligibilityAnswer{Stream: req.stream, Wariness: req.wariness,
		Releases: graph.EligibilityOf(sc.g, req.booted, req.wariness, s.now())}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(ans)
}

func (s *Server) serveMetrics(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	fmt.Fprintf(w, "# HELP strata_graph_requests_total Requests received by the graph server.\n# TYPE strata_graph_requests_total counter\nstrata_graph_requests_total %d\n", s.requests.Load())
	fmt.Fprintf(w, "# HELP strata_graph_errors_total Requests answered with an error.\n# TYPE strata_graph_errors_total counter\nstrata_graph_errors_total %d\n", s.errors.Load())
	fmt.Fprintf(w, "# HELP strata_graph_releases Releases listed per stream.\n# TYPE strata_graph_releases gauge\n")
	s.mu.Lock()
	names := make([]string, 0, len(s.streams))
	for n := range s.streams {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "strata_graph_releases{stream=%q} %d\n", n, len(s.streams[n].releases.Releases))
	}
	loadErr := 0
	if s.loadErr != nil {
		loadErr = 1
	}
	s.mu.Unlock()
	fmt.Fprintf(w, "# HELP strata_graph_inputs_broken Whether the newest inputs could not be used (the previous graph is served).\n# TYPE strata_graph_inputs_broken gauge\nstrata_graph_inputs_broken %d\n", loadErr)
}

// Error is the body of an error answer: a kind from a small fixed set, and a human message.
type Error struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func (s *Server) fail(w http.ResponseWriter, code int, kind, value string) {
	s.errors.Add(1)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(Error{Kind: kind, Value: value})
}
