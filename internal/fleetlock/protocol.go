package fleetlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"

	"github.com/strata-os/strata/internal/errdefs"
)

// The protocol's fixed parts.
const (
	Header         = "fleet-lock-protocol"
	PathPreReboot  = "v1/pre-reboot"
	PathSteady     = "v1/steady-state"
	DefaultGroup   = "default"
	maxRequestBody = 64 << 10
)

// groupPattern is the protocol's rule for group names.
var groupPattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// Request is the body of both calls.
type Request struct {
	ClientParams ClientParams `json:"client_params"`
}

// ClientParams names the node and its group.
type ClientParams struct {
	ID    string `json:"id"`
	Group string `json:"group"`
}

// Validate checks the parameters as the protocol requires: a non-empty id (at most 256 bytes
// here, to bound what a client can store), and a group matching ^[a-zA-Z0-9.-]+$.
func (p ClientParams) Validate() error {
	if p.ID == "" || len(p.ID) > 256 {
		return fmt.Errorf("client id must be 1 to 256 bytes: %w", errdefs.ErrInvalid)
	}
	if !ValidGroup(p.Group) {
		return fmt.Errorf("group %q does not match %s: %w", p.Group, groupPattern, errdefs.ErrInvalid)
	}
	return nil
}

// ValidGroup reports whether name is a valid group name.
func ValidGroup(name string) bool { return len(name) <= 253 && groupPattern.MatchString(name) }

// Error kinds the server sends: a small fixed set, usable as metric labels.
const (
	KindInvalidIdentity = "invalid_client_identity" // bad header, body or params (400)
	KindUnknownGroup    = "unknown_group"           // the group is not configured (400)
	KindLockFull        = "failed_lock"             // every slot held (409 here; airlock sends 500)
	KindWindowClosed    = "maintenance_window_closed"
	KindConflict        = "conflict"    // a concurrent change; retry (409)
	KindUnavailable     = "unavailable" // the store cannot be reached (503)
	KindGeneric         = "generic_error"
)

// Error is an error answer of the server, and the error a client returns for one.
type Error struct {
	Kind  string `json:"kind"`
	Value string `json:"value"`
	// Status is the HTTP status the answer came with (not on the wire).
	Status int `json:"-"`
}

func (e *Error) Error() string { return fmt.Sprintf("fleet lock: %s (%s)", e.Value, e.Kind) }

// Unwrap gives the error the class of its kind, so callers test with errors.Is.
func (e *Error) Unwrap() error {
	switch e.Kind {
	case KindInvalidIdentity, KindUnknownGroup:
		return errdefs.ErrInvalid
	case KindLockFull, KindConflict, KindWindowClosed:
		return errdefs.ErrConflict
	}
	return errdefs.ErrUnavailable
}

// Client calls a FleetLock server. BaseURL should end in "/": paths are joined relative to it,
// as Zincati joins them.
type Client struct {
	BaseURL *url.URL
	HTTP    *http.Client
	Params  ClientParams
}

// PreReboot takes a reboot slot, or returns an *Error (errdefs.ErrConflict when all are held).
func (c *Client) PreReboot(ctx context.Context) error { return c.call(ctx, PathPreReboot) }

// SteadyState releases any slot the client holds.
func (c *Client) SteadyState(ctx context.Context) error { return c.call(ctx, PathSteady) }

func (c *Client) call(ctx context.Context, path string) error {
	if err := c.Params.Validate(); err != nil {
		return err
	}
	body, _ := json.Marshal(Request{ClientParams: c.Params})
	u := c.BaseURL.ResolveReference(&url.URL{Path: path})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("fleet lock %s: %w", path, err)
	}
	req.Header.Set(Header, "true")
	req.Header.Set("Content-Type", "application/json")
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("fleet lock %s: %v: %w", u, err, errdefs.ErrUnavailable)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, maxRequestBody))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	var e Error
	if json.Unmarshal(data, &e) != nil || e.Kind == "" {
		// Not the protocol's error body: the kind says the status, as Zincati labels it.
		e = Error{Kind: fmt.Sprintf("generic_http_%d", resp.StatusCode), Value: string(bytes.TrimSpace(data))}
	}
	e.Status = resp.StatusCode
	return &e
}

// ParseRequest reads and checks a call's header and body.
func ParseRequest(r *http.Request) (ClientParams, error) {
	if r.Header.Get(Header) != "true" {
		return ClientParams{}, &Error{Kind: KindInvalidIdentity, Value: "missing header " + Header + ": true", Status: http.StatusBadRequest}
	}
	var req Request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	if err := dec.Decode(&req); err != nil {
		return ClientParams{}, &Error{Kind: KindInvalidIdentity, Value: "malformed body: " + err.Error(), Status: http.StatusBadRequest}
	}
	if err := req.ClientParams.Validate(); err != nil {
		return ClientParams{}, &Error{Kind: KindInvalidIdentity, Value: trimClass(err), Status: http.StatusBadRequest}
	}
	return req.ClientParams, nil
}

// trimClass returns err's message without the class suffix that wrapping adds.
func trimClass(err error) string {
	s := err.Error()
	for _, c := range []error{errdefs.ErrInvalid} {
		if errors.Is(err, c) {
			if t, ok := bytes.CutSuffix([]byte(s), []byte(": "+c.Error())); ok {
				return string(t)
			}
		}
	}
	return s
}
