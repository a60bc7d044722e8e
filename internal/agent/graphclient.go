package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/graph"
)

// GraphClient fetches the graph from a Cincinnati server with the parameters Zincati sends.
type GraphClient struct {
	BaseURL  string // expanded cincinnati.base_url
	HTTP     *http.Client
	Basearch string
	Stream   string
	Group    string
	NodeUUID string
	Platform string
	// Wariness is the configured rollout_wariness; nil lets the server derive it from the id.
	Wariness *float64
	// OCI asks for image payloads (a node that follows a registry).
	OCI bool
}

// Graph fetches and checks the graph (graph.Decode bounds and validates it).
func (c *GraphClient) Graph(ctx context.Context, booted Release, forceEager bool) (graph.Graph, error) {
	u, err := url.Parse(c.BaseURL)
	if err != nil {
		return graph.Graph{}, fmt.Errorf("cincinnati.base_url %q: %v: %w", c.BaseURL, err, errdefs.ErrInvalid)
	}
	u = u.JoinPath("v1/graph")
	q := url.Values{}
	q.Set("basearch", c.Basearch)
	q.Set("stream", c.Stream)
	q.Set("os_version", booted.Version)
	q.Set("os_checksum", booted.Payload)
	q.Set("group", c.Group)
	q.Set("node_uuid", c.NodeUUID)
	q.Set("platform", c.Platform)
	if forceEager {
		q.Set("rollout_wariness", "0.000000")
	} else if c.Wariness != nil {
		q.Set("rollout_wariness", strconv.FormatFloat(*c.Wariness, 'f', 6, 64))
	}
	if c.OCI {
		q.Set("oci", "true")
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return graph.Graph{}, err
	}
	req.Header.Set("Accept", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return graph.Graph{}, fmt.Errorf("%v: %w", err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return graph.Graph{}, fmt.Errorf("GET %s: %s: %w", u.Redacted(), resp.Status, errdefs.ErrUnavailable)
	}
	return graph.Decode(resp.Body)
}
