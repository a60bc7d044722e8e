package agent

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A broken, hostile or slow graph server, or a lock server that is down: the agent stages
// nothing it was not offered by a valid graph, never reboots without permission, and says why.
func TestHostileGraph(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		handler http.HandlerFunc
		want    string
	}{
		"server error": {func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, "500"},
		"not json":     {func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("<html>")) }, "decoding the graph"},
		"edge out of range": {func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"nodes":[{"version":"1","payload":"c1","metadata":{"org.fedoraproject.coreos.releases.age_index":"0","org.fedoraproject.coreos.scheme":"checksum"}}],"edges":[[0,7]]}`))
		}, "outside the 1 nodes"},
		"huge body": {func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"nodes":[],"pad":"`))
			chunk := []byte(strings.Repeat("x", 1<<20))
			for i := 0; i < 20; i++ {
				if _, err := w.Write(chunk); err != nil {
					return
				}
			}
		}, "larger than"},
		"booted release missing": {func(w http.ResponseWriter, r *http.Request) {
			w.Write([]byte(`{"nodes":[{"version":"9","payload":"c9","metadata":{"org.fedoraproject.coreos.releases.age_index":"0","org.fedoraproject.coreos.scheme":"checksum"}}],"edges":[]}`))
		}, "not in the graph"},
		"slow": {func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, "Timeout"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			node := &fakeNode{booted: rel(1), deployed: []string{"c1"}}
			g := &gate{open: true}
			a := New(Options{Config: Defaults(), Deployer: node, Strategy: g,
				Graph: &GraphClient{BaseURL: srv.URL + "/", HTTP: &http.Client{Timeout: 500 * time.Millisecond}, Basearch: "x86_64", Stream: "s", NodeUUID: "n"}})
			for i := 0; i < 5; i++ {
				if a.Step(context.Background()) > 0 {
					break
				}
			}
			st := a.Status()
			if node.stages != 0 || node.rebooting != nil || st.Target != nil {
				t.Errorf("staged %d times, rebooting %v, target %v: want nothing", node.stages, node.rebooting, st.Target)
			}
			if !strings.Contains(st.LastError, tc.want) {
				t.Errorf("last error = %q, want it to say %q", st.LastError, tc.want)
			}
		})
	}
}

// A lock server that is down: the update stays staged, the node does not reboot, and the status
// says why.
func TestLockServerDown(t *testing.T) {
	t.Parallel()
	h := newHarness(t, linear(2), 1)
	h.a.opts.Strategy = downLock{}
	h.run(1)
	st := h.a.Status()
	if st.State != StateUpdateStaged || h.node.rebooting != nil || !strings.Contains(st.LastError, "connection refused") {
		t.Errorf("with the lock server down: %+v", st)
	}
}

type downLock struct{}

func (downLock) Name() string                       { return StrategyFleetLock }
func (downLock) ReportSteady(context.Context) error { return nil }
func (downLock) CanFinalize(context.Context, time.Time) (bool, string, error) {
	return false, "", errRefused
}

var errRefused = &netError{"dial tcp 127.0.0.1:3333: connect: connection refused"}

type netError struct{ s string }

func (e *netError) Error() string { return e.s }
