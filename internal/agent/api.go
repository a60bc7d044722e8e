package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// SocketPath is where the running agent answers `strata update`, relative to the root.
const SocketPath = "run/strata/agent.sock"

// Handler serves the agent's local API: GET /v1/status, POST /v1/check, POST /v1/apply
// (?now=true), GET /metrics.
func (a *Agent) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(a.Status())
	})
	mux.HandleFunc("POST /v1/check", func(w http.ResponseWriter, r *http.Request) {
		a.Check()
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /v1/apply", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("now") == "true" {
			a.ApplyNow()
		} else {
			a.Check()
		}
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		a.WriteMetrics(w)
	})
	return mux
}

// Listen opens the agent's socket at path, readable and writable by root only: the API changes
// when a node reboots.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// Client talks to a running agent over its socket.
type Client struct{ http *http.Client }

// NewClient returns a client of the agent socket at path.
func NewClient(path string) *Client {
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}
	return &Client{http: &http.Client{Transport: tr, Timeout: 10 * time.Second}}
}

func (c *Client) do(ctx context.Context, method, path string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("the update agent is not answering (is strata-agent.service running?): %v: %w", err, errdefs.ErrUnavailable)
	}
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		return nil, fmt.Errorf("update agent: %s: %s", resp.Status, b)
	}
	return resp, nil
}

// Status returns the agent's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	resp, err := c.do(ctx, http.MethodGet, "/v1/status")
	if err != nil {
		return Status{}, err
	}
	defer resp.Body.Close()
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return Status{}, fmt.Errorf("decoding the agent's status: %w", err)
	}
	return s, nil
}

// Check asks the agent to poll the graph now.
func (c *Client) Check(ctx context.Context) error {
	resp, err := c.do(ctx, http.MethodPost, "/v1/check")
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// Apply asks the agent to apply the next update; with now, at once, whatever the strategy says.
func (c *Client) Apply(ctx context.Context, now bool) error {
	p := "/v1/apply"
	if now {
		p += "?now=true"
	}
	resp, err := c.do(ctx, http.MethodPost, p)
	if err == nil {
		resp.Body.Close()
	}
	return err
}

// Metrics returns the agent's metrics text.
func (c *Client) Metrics(ctx context.Context) (string, error) {
	resp, err := c.do(ctx, http.MethodGet, "/metrics")
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
