package fleetlock

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

func TestSemaphore(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	s := NewSemaphore(2)
	for _, id := range []string{"b", "a"} {
		if changed, err := s.Lock(id, now); err != nil || !changed {
			t.Fatalf("Lock(%s) = %v, %v", id, changed, err)
		}
	}
	if changed, err := s.Lock("a", now); err != nil || changed {
		t.Errorf("recursive Lock(a) = %v, %v; want success without a change", changed, err)
	}
	if _, err := s.Lock("c", now); !errors.Is(err, ErrFull) || !errors.Is(err, errdefs.ErrConflict) || !strings.Contains(err.Error(), "all 2 semaphore slots") {
		t.Errorf("Lock(c) on a full semaphore = %v, want ErrFull", err)
	}
	if strings.Join(s.Holders, ",") != "a,b" {
		t.Errorf("holders = %v, want sorted a,b", s.Holders)
	}
	if s.Unlock("zz") || !s.Unlock("a") || s.Holds("a") {
		t.Error("Unlock of a non-holder changed something, or Unlock(a) did not release a")
	}
	if exp := s.Expired(time.Minute, now.Add(2*time.Minute)); len(exp) != 1 || exp[0] != "b" {
		t.Errorf("Expired = %v, want [b]", exp)
	}
	// airlock's value: holders without acquisition times never expire.
	a, err := ParseSemaphore([]byte(`{"total_slots":1,"holders":["x"]}`))
	if err != nil || !a.Holds("x") || len(a.Expired(time.Second, now)) != 0 {
		t.Errorf("ParseSemaphore(airlock value) = %+v, %v", a, err)
	}
	for _, bad := range []string{`{"holders":["b","a"]}`, `{"holders":["a","a"]}`, `[`} {
		if _, err := ParseSemaphore([]byte(bad)); !errors.Is(err, errdefs.ErrCorrupt) {
			t.Errorf("ParseSemaphore(%s) = %v, want corrupt", bad, err)
		}
	}
}

func TestClientParams(t *testing.T) {
	t.Parallel()
	for _, g := range []string{"", "a b", "wörkers", "x/y", strings.Repeat("a", 300)} {
		if (ClientParams{ID: "n", Group: g}).Validate() == nil {
			t.Errorf("group %q accepted", g)
		}
	}
	if err := (ClientParams{ID: "n", Group: "workers.eu-1"}).Validate(); err != nil {
		t.Errorf("valid group refused: %v", err)
	}
	if (ClientParams{Group: "default"}).Validate() == nil {
		t.Error("empty id accepted")
	}
}

// The client sends what the protocol says and maps answers to errors.
func TestClient(t *testing.T) {
	t.Parallel()
	var gotPath, gotHeader, gotBody string
	status, answer := 200, ""
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath, gotHeader = r.URL.Path, r.Header.Get(Header)
		b := new(strings.Builder)
		buf := make([]byte, 512)
		n, _ := r.Body.Read(buf)
		b.Write(buf[:n])
		gotBody = b.String()
		w.WriteHeader(status)
		w.Write([]byte(answer))
	}))
	defer srv.Close()
	base, _ := url.Parse(srv.URL + "/lock/")
	c := &Client{BaseURL: base, Params: ClientParams{ID: "c988d2509fdf5cdcbed39037c56406fb", Group: "workers"}}
	if err := c.PreReboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	if gotPath != "/lock/v1/pre-reboot" || gotHeader != "true" || gotBody != `{"client_params":{"id":"c988d2509fdf5cdcbed39037c56406fb","group":"workers"}}` {
		t.Errorf("request = %s %q %s", gotPath, gotHeader, gotBody)
	}
	status, answer = 500, `{"kind":"failed_lock","value":"all 2 semaphore slots currently locked"}`
	var fe *Error
	if err := c.PreReboot(t.Context()); !errors.As(err, &fe) || fe.Kind != KindLockFull || !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("PreReboot against a full lock = %v", err)
	}
	status, answer = 502, `bad gateway`
	if err := c.SteadyState(t.Context()); !errors.As(err, &fe) || fe.Kind != "generic_http_502" || !errors.Is(err, errdefs.ErrUnavailable) {
		t.Errorf("SteadyState against a proxy error = %v", err)
	}
}
