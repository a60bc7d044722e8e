package graphserver

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/graph"
)

const start = 1_700_000_000

// writeInputs writes a releases.json of versions 1..n and an updates/stable.json in which
// version 2 is a barrier and version n rolls out from start over 100 minutes.
func writeInputs(t *testing.T, dir string, n int) Inputs {
	t.Helper()
	var ri graph.ReleaseIndex
	for i := 1; i <= n; i++ {
		ri.Releases = append(ri.Releases, graph.Release{Version: fmt.Sprint(i),
			Commits:   []graph.Commit{{Architecture: "x86_64", Checksum: fmt.Sprintf("%064x", i)}},
			OCIImages: []graph.OCIImage{{Architecture: "x86_64", Image: "reg/os", DigestRef: fmt.Sprintf("reg/os@sha256:%064x", i)}},
		})
	}
	e, m, z := int64(start), uint64(100), 0.0
	u := graph.Updates{Stream: "stable", Releases: []graph.UpdateRelease{
		{Version: "2", Metadata: graph.UpdateMetadata{Barrier: &graph.Reason{}}},
		{Version: fmt.Sprint(n), Metadata: graph.UpdateMetadata{Rollout: &graph.Rollout{StartEpoch: &e, StartPercentage: &z, DurationMinutes: &m}}},
	}}
	writeJSON(t, filepath.Join(dir, "releases.json"), ri)
	os.MkdirAll(filepath.Join(dir, "updates"), 0o755)
	writeJSON(t, filepath.Join(dir, "updates", "stable.json"), u)
	return Inputs{Releases: filepath.Join(dir, "releases.json"), Updates: filepath.Join(dir, "updates")}
}

func writeJSON(t testing.TB, path string, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

func get(t *testing.T, srv *httptest.Server, path string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 1<<16)
	for {
		n, err := resp.Body.Read(buf)
		b.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp.StatusCode, []byte(b.String())
}

func TestGraphEndpoint(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Unix(start+50*60, 0)} // the rollout of 4 is half way
	s, err := New(writeInputs(t, t.TempDir(), 4), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()

	q := "/v1/graph?basearch=x86_64&stream=stable&os_version=2&os_checksum=x&group=default&platform=qemu&node_uuid=27e3ac02af3946af995c9940e18b0cce"
	for _, tc := range []struct {
		wariness string
		want     int // edges into 4
	}{{"0.000000", 2}, {"0.400000", 2}, {"0.600000", 0}, {"1.000000", 0}} {
		code, body := get(t, srv, q+"&rollout_wariness="+tc.wariness)
		if code != 200 {
			t.Fatalf("GET graph = %d %s", code, body)
		}
		g, err := graph.Decode(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("the answer does not decode: %v\n%s", err, body)
		}
		into4 := 0
		for _, e := range g.Edges {
			if g.Nodes[e[1]].Version == "4" {
				into4++
			}
		}
		if into4 != tc.want || len(g.Nodes) != 4 {
			t.Errorf("wariness %s: %d nodes, %d edges into the rollout, want 4 nodes and %d edges", tc.wariness, len(g.Nodes), into4, tc.want)
		}
	}
	// After the end of the rollout everybody sees it.
	clk.Set(time.Unix(start+101*60, 0))
	_, body := get(t, srv, q+"&rollout_wariness=1.0")
	if !strings.Contains(string(body), "[2,3],[1,3]") && !strings.Contains(string(body), "[1,3],[2,3]") {
		t.Errorf("after the rollout ended, edges = %s, want 2→4 and 3→4", body)
	}
	// OCI scope.
	_, body = get(t, srv, "/v1/graph?basearch=x86_64&stream=stable&oci=true")
	if !strings.Contains(string(body), `"payload":"reg/os@sha256:`) || !strings.Contains(string(body), `"oci"`) {
		t.Errorf("oci=true answer does not carry image payloads: %s", body)
	}

	for _, tc := range []struct {
		path, kind string
		code       int
	}{
		{"/v1/graph?stream=stable", "missing_params", 400},
		{"/v1/graph?basearch=x86_64", "missing_params", 400},
		{"/v1/graph?basearch=x86_64&stream=next", "unknown_stream", 404},
		{"/v2/graph", "not_found", 404},
	} {
		code, body := get(t, srv, tc.path)
		var e Error
		if code != tc.code || json.Unmarshal(body, &e) != nil || e.Kind != tc.kind || e.Value == "" {
			t.Errorf("GET %s = %d %s, want %d and kind %s", tc.path, code, body, tc.code, tc.kind)
		}
	}
	code, body := get(t, srv, "/metrics")
	if code != 200 || !strings.Contains(string(body), "strata_graph_requests_total ") || !strings.Contains(string(body), `strata_graph_releases{stream="stable"} 4`) {
		t.Errorf("GET /metrics = %d %s", code, body)
	}
}

func TestEligibilityEndpoint(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Unix(start, 0)}
	s, err := New(writeInputs(t, t.TempDir(), 4), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	code, body := get(t, srv, fmt.Sprintf("/v1/eligibility?basearch=x86_64&stream=stable&rollout_wariness=0.25&os_checksum=%064x", 3))
	var ans EligibilityAnswer
	if code != 200 || json.Unmarshal(body, &ans) != nil {
		t.Fatalf("GET eligibility = %d %s", code, body)
	}
	if ans.Wariness != 0.25 || len(ans.Releases) != 1 || ans.Releases[0].Version != "4" || ans.Releases[0].Eligible ||
		ans.Releases[0].From == nil || ans.Releases[0].From.Unix() != start+25*60 {
		t.Errorf("eligibility = %s, want release 4 eligible from start+25m for wariness 0.25", body)
	}
}

// A changed input is served after the reload interval; a broken one is logged and the previous
// graph stays.
func TestReload(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := &clock{now: time.Unix(start+200*60, 0)}
	s, err := New(writeInputs(t, dir, 3), WithClock(clk.Now), WithReloadInterval(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	nodes := func() int {
		_, body := get(t, srv, "/v1/graph?basearch=x86_64&stream=stable")
		g, err := graph.Decode(strings.NewReader(string(body)))
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		return len(g.Nodes)
	}
	writeInputs(t, dir, 5)
	if n := nodes(); n != 3 {
		t.Errorf("before the reload interval: %d nodes, want 3", n)
	}
	clk.Set(clk.Now().Add(2 * time.Minute))
	if n := nodes(); n != 5 {
		t.Errorf("after the reload interval: %d nodes, want 5", n)
	}
	os.WriteFile(filepath.Join(dir, "releases.json"), []byte("{broken"), 0o644)
	clk.Set(clk.Now().Add(2 * time.Minute))
	if n := nodes(); n != 5 {
		t.Errorf("after a broken input: %d nodes, want the previous 5", n)
	}
	_, body := get(t, srv, "/metrics")
	if !strings.Contains(string(body), "strata_graph_inputs_broken 1") {
		t.Errorf("metrics do not say the inputs are broken:\n%s", body)
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := New(Inputs{Releases: filepath.Join(dir, "r.json"), Updates: dir}); err == nil {
		t.Error("New with an empty updates directory succeeded")
	}
	in := writeInputs(t, dir, 2)
	os.WriteFile(in.Releases, []byte(`{"releases":[{"version":"1"},{"version":"1"}]}`), 0o644)
	if _, err := New(in); err == nil || !strings.Contains(err.Error(), "listed twice") {
		t.Errorf("New with a duplicate version = %v, want an error naming it", err)
	}
}

// BenchmarkGraph measures the server's answers per second for a 200-release stream, through
// the handler (no network), for clients that take gzip (as Zincati does) and clients that do
// not: make bench measures it over loopback.
func BenchmarkGraph(b *testing.B) {
	dir := b.TempDir()
	in := writeInputsB(b, dir, 200)
	s, err := New(in, WithClock(func() time.Time { return time.Unix(start+50*60, 0) }))
	if err != nil {
		b.Fatal(err)
	}
	for _, enc := range []string{"identity", "gzip"} {
		b.Run(enc, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				w := &discardWriter{h: http.Header{}}
				for pb.Next() {
					i++
					r := httptest.NewRequest("GET", fmt.Sprintf("/v1/graph?basearch=x86_64&stream=stable&node_uuid=%032x", i), nil)
					r.Header.Set("Accept-Encoding", enc)
					clear(w.h)
					w.code = 200
					s.ServeHTTP(w, r)
					if w.code != 200 {
						b.Fatal(w.code)
					}
				}
			})
		})
	}
}

// discardWriter is a ResponseWriter that keeps the status and drops the body, so that a
// benchmark measures the handler rather than a recorder's copying.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(code int)        { w.code = code }

func writeInputsB(b *testing.B, dir string, n int) Inputs {
	b.Helper()
	var ri graph.ReleaseIndex
	for i := 1; i <= n; i++ {
		ri.Releases = append(ri.Releases, graph.Release{Version: fmt.Sprint(i), Commits: []graph.Commit{{Architecture: "x86_64", Checksum: fmt.Sprintf("%064x", i)}}})
	}
	e, m, z := int64(start), uint64(100), 0.0
	u := graph.Updates{Stream: "stable"}
	for i := 2; i <= n; i += 10 {
		u.Releases = append(u.Releases, graph.UpdateRelease{Version: fmt.Sprint(i), Metadata: graph.UpdateMetadata{Barrier: &graph.Reason{}}})
	}
	u.Releases = append(u.Releases, graph.UpdateRelease{Version: fmt.Sprint(n), Metadata: graph.UpdateMetadata{Rollout: &graph.Rollout{StartEpoch: &e, StartPercentage: &z, DurationMinutes: &m}}})
	writeJSON(b, filepath.Join(dir, "releases.json"), ri)
	if err := os.MkdirAll(filepath.Join(dir, "updates"), 0o755); err != nil {
		b.Fatal(err)
	}
	writeJSON(b, filepath.Join(dir, "updates", "stable.json"), u)
	return Inputs{Releases: filepath.Join(dir, "releases.json"), Updates: filepath.Join(dir, "updates")}
}

// A client that accepts gzip (Zincati's does) gets the same answer compressed, for every set of
// hidden rollouts; one that refuses it, or does not ask, gets it as is.
func TestGraphGzip(t *testing.T) {
	t.Parallel()
	clk := &clock{now: time.Unix(start+50*60, 0)}
	s, err := New(writeInputs(t, t.TempDir(), 4), WithClock(clk.Now))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	hc := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	fetch := func(method, path, accept string) (*http.Response, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	for _, w := range []string{"0.1", "0.9"} {
		q := "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=" + w
		plain, want := fetch("GET", q, "")
		if ce := plain.Header.Get("Content-Encoding"); ce != "" {
			t.Errorf("wariness %s without Accept-Encoding: Content-Encoding %q, want none", w, ce)
		}
		for _, accept := range []string{"gzip", "br, gzip;q=0.5", "*", "GZIP"} {
			resp, body := fetch("GET", q, accept)
			if resp.Header.Get("Content-Encoding") != "gzip" || !slices.Contains(resp.Header.Values("Vary"), "Accept-Encoding") {
				t.Fatalf("wariness %s, Accept-Encoding %q: headers %v, want gzip and Vary", w, accept, resp.Header)
			}
			zr, err := gzip.NewReader(bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("wariness %s, Accept-Encoding %q: the gzip answer decodes to\n%s\nwant\n%s", w, accept, got, want)
			}
			if resp.ContentLength != int64(len(body)) {
				t.Errorf("Content-Length %d, body %d bytes", resp.ContentLength, len(body))
			}
		}
		for _, accept := range []string{"gzip;q=0", "identity", "*;q=0", "br, *;q=1, gzip; q=0"} {
			resp, body := fetch("GET", q, accept)
			if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, want) {
				t.Errorf("wariness %s, Accept-Encoding %q: Content-Encoding %q, want the plain answer", w, accept, resp.Header.Get("Content-Encoding"))
			}
		}
		resp, body := fetch("HEAD", q, "gzip")
		if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Encoding") != "gzip" {
			t.Errorf("HEAD = %d, %d bytes, %v", resp.StatusCode, len(body), resp.Header)
		}
	}
	_, low := fetch("GET", "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=0.1", "")
	_, high := fetch("GET", "/v1/graph?basearch=x86_64&stream=stable&rollout_wariness=0.9", "")
	if bytes.Equal(low, high) {
		t.Errorf("wariness 0.1 and 0.9 got the same answer half way through the rollout: %s", low)
	}
}
