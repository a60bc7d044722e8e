package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/schedule"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }
func newClock() *clock               { return &clock{t: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)} } // a Monday
func client(base string, id, group string) *fleetlock.Client {
	u, _ := url.Parse(base + "/")
	return &fleetlock.Client{BaseURL: u, Params: fleetlock.ClientParams{ID: id, Group: group}}
}

func openBolt(t *testing.T) Store {
	t.Helper()
	s, err := OpenBolt(filepath.Join(t.TempDir(), "lock.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestBolt(t *testing.T) {
	t.Parallel()
	runConformance(t, openBolt)
}

// runConformance runs the server's behaviour over a store.
func runConformance(t *testing.T, open func(*testing.T) Store) {
	t.Run("protocol", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		srv := httptest.NewServer(New(open(t), Config{DefaultSlots: 2}, clk.Now, nil))
		defer srv.Close()
		a, b, c := client(srv.URL, "a", "workers"), client(srv.URL, "b", "workers"), client(srv.URL, "c", "workers")
		for _, cl := range []*fleetlock.Client{a, a, b} { // a twice: recursive
			if err := cl.PreReboot(t.Context()); err != nil {
				t.Fatalf("PreReboot(%s) = %v", cl.Params.ID, err)
			}
		}
		var fe *fleetlock.Error
		if err := c.PreReboot(t.Context()); !errors.As(err, &fe) || fe.Kind != fleetlock.KindLockFull || fe.Status != http.StatusConflict || fe.Value != "all 2 semaphore slots currently locked" {
			t.Fatalf("PreReboot(c) with both slots held = %v, want failed_lock", err)
		}
		if err := c.SteadyState(t.Context()); err != nil { // not a holder: succeeds
			t.Fatal(err)
		}
		if err := a.SteadyState(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := c.PreReboot(t.Context()); err != nil {
			t.Fatalf("PreReboot(c) after a released = %v", err)
		}
		// Groups are separate.
		if err := client(srv.URL, "a", "other").PreReboot(t.Context()); err != nil {
			t.Fatal(err)
		}
		st := getGroup(t, srv.URL, "workers")
		if st.TotalSlots != 2 || len(st.Holders) != 2 || st.Holders[0].ID != "b" || st.Holders[1].ID != "c" || st.Holders[0].Since == nil || !st.WindowOpen {
			t.Errorf("GET workers = %+v, want holders b and c with times", st)
		}
		// Malformed calls.
		for name, req := range map[string]func() *http.Request{
			"no header": func() *http.Request {
				r, _ := http.NewRequest("POST", srv.URL+"/v1/pre-reboot", strings.NewReader(`{"client_params":{"id":"x","group":"g"}}`))
				return r
			},
			"bad group": func() *http.Request {
				r, _ := http.NewRequest("POST", srv.URL+"/v1/pre-reboot", strings.NewReader(`{"client_params":{"id":"x","group":"a b"}}`))
				r.Header.Set(fleetlock.Header, "true")
				return r
			},
			"no body": func() *http.Request {
				r, _ := http.NewRequest("POST", srv.URL+"/v1/steady-state", nil)
				r.Header.Set(fleetlock.Header, "true")
				return r
			},
		} {
			resp, err := http.DefaultClient.Do(req())
			if err != nil {
				t.Fatal(err)
			}
			var e fleetlock.Error
			json.NewDecoder(resp.Body).Decode(&e)
			resp.Body.Close()
			if resp.StatusCode != 400 || e.Kind != fleetlock.KindInvalidIdentity {
				t.Errorf("%s: status %d kind %q, want 400 invalid_client_identity", name, resp.StatusCode, e.Kind)
			}
		}
	})
	t.Run("k slots are never exceeded", func(t *testing.T) {
		t.Parallel()
		const slots, nodes = 3, 60
		srv := httptest.NewServer(New(open(t), Config{DefaultSlots: slots}, time.Now, nil))
		defer srv.Close()
		var holding, maxHolding, granted atomic.Int64
		var wg sync.WaitGroup
		for i := 0; i < nodes; i++ {
			wg.Add(1)
			go func(id string) {
				defer wg.Done()
				cl := client(srv.URL, id, "default")
				for {
					err := cl.PreReboot(context.Background())
					if err == nil {
						break
					}
					if !errors.Is(err, errdefs.ErrConflict) {
						t.Errorf("PreReboot(%s) = %v", id, err)
						return
					}
					time.Sleep(time.Millisecond)
				}
				n := holding.Add(1)
				for m := maxHolding.Load(); n > m && !maxHolding.CompareAndSwap(m, n); m = maxHolding.Load() {
				}
				granted.Add(1)
				time.Sleep(2 * time.Millisecond) // "reboot"
				holding.Add(-1)
				if err := cl.SteadyState(context.Background()); err != nil {
					t.Errorf("SteadyState(%s) = %v", id, err)
				}
			}(fmt.Sprintf("node-%02d", i))
		}
		wg.Wait()
		if maxHolding.Load() > slots || granted.Load() != nodes {
			t.Errorf("max %d nodes held slots at once (want <= %d); %d of %d granted", maxHolding.Load(), slots, granted.Load(), nodes)
		}
	})
	t.Run("lease releases a dead holder, with an audit record", func(t *testing.T) {
		t.Parallel()
		clk := newClock()
		srv := httptest.NewServer(New(open(t), Config{DefaultSlots: 1, Lease: time.Hour}, clk.Now, nil))
		defer srv.Close()
		if err := client(srv.URL, "dead", "g").PreReboot(t.Context()); err != nil {
			t.Fatal(err)
		}
		if err := client(srv.URL, "next", "g").PreReboot(t.Context()); err == nil {
			t.Fatal("a second node got the only slot within the lease")
		}
		clk.Add(61 * time.Minute)
		if err := client(srv.URL, "next", "g").PreReboot(t.Context()); err != nil {
			t.Fatalf("PreReboot after the holder's lease expired = %v", err)
		}
		recs := getAudit(t, srv.URL)
		if len(recs) != 1 || recs[0].ID != "dead" || recs[0].Action != "lease-expired" || recs[0].Held != "1h1m0s" {
			t.Errorf("audit = %+v, want one lease-expired record for dead", recs)
		}
	})
	t.Run("forced release", func(t *testing.T) {
		t.Parallel()
		srv := httptest.NewServer(New(open(t), Config{DefaultSlots: 1}, time.Now, nil))
		defer srv.Close()
		if err := client(srv.URL, "stuck", "g").PreReboot(t.Context()); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Post(srv.URL+"/v1/groups/g/release", "application/json", strings.NewReader(`{"id":"stuck","reason":"node replaced"}`))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("forced release = %v %v", resp.Status, err)
		}
		resp.Body.Close()
		if st := getGroup(t, srv.URL, "g"); len(st.Holders) != 0 {
			t.Errorf("holders after a forced release = %+v", st.Holders)
		}
		recs := getAudit(t, srv.URL)
		if len(recs) != 1 || recs[0].Action != "forced-release" || recs[0].Reason != "node replaced" {
			t.Errorf("audit = %+v", recs)
		}
		resp, _ = http.Post(srv.URL+"/v1/groups/g/release", "application/json", strings.NewReader(`{"id":"stuck","reason":"again"}`))
		if resp.StatusCode != 404 {
			t.Errorf("releasing a non-holder = %s, want 404", resp.Status)
		}
		resp.Body.Close()
	})
	t.Run("maintenance windows", func(t *testing.T) {
		t.Parallel()
		clk := newClock() // Monday 12:00 UTC
		cal, err := schedule.New("UTC", []schedule.Window{{Days: []string{"Mon"}, StartTime: "13:00", LengthMinutes: 60}})
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(New(open(t), Config{DefaultSlots: 1, StrictGroups: true,
			Groups: map[string]Group{"db": {Slots: 1, Windows: cal}}}, clk.Now, nil))
		defer srv.Close()
		var fe *fleetlock.Error
		if err := client(srv.URL, "n", "db").PreReboot(t.Context()); !errors.As(err, &fe) || fe.Kind != fleetlock.KindWindowClosed || !strings.Contains(fe.Value, "2026-12-07T13:00:00Z") {
			t.Fatalf("PreReboot outside the window = %v", err)
		}
		if st := getGroup(t, srv.URL, "db"); st.WindowOpen || st.NextWindow == nil {
			t.Errorf("GET db outside the window = %+v", st)
		}
		clk.Add(90 * time.Minute)
		if err := client(srv.URL, "n", "db").PreReboot(t.Context()); err != nil {
			t.Fatalf("PreReboot inside the window = %v", err)
		}
		clk.Add(2 * time.Hour)
		if err := client(srv.URL, "n", "db").PreReboot(t.Context()); err != nil {
			t.Errorf("a holder asking again after its window closed = %v, want success", err)
		}
		if err := client(srv.URL, "n", "web").PreReboot(t.Context()); !errors.As(err, &fe) || fe.Kind != fleetlock.KindUnknownGroup {
			t.Errorf("PreReboot of an unconfigured group with strict groups = %v", err)
		}
	})
}

func getGroup(t *testing.T, base, g string) GroupStatus {
	t.Helper()
	resp, err := http.Get(base + "/v1/groups/" + g)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var st GroupStatus
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET group %s = %s, %v", g, resp.Status, err)
	}
	return st
}

func getAudit(t *testing.T, base string) []Record {
	t.Helper()
	resp, err := http.Get(base + "/v1/audit")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct{ Records []Record }
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Records
}

// The bbolt store survives a restart of the server: no slot granted twice, no holder lost.
func TestBoltRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "lock.db")
	st, err := OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	s := New(st, Config{DefaultSlots: 1}, time.Now, nil)
	if err := s.Lock(t.Context(), fleetlock.ClientParams{ID: "a", Group: "g"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	st, err = OpenBolt(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	s = New(st, Config{DefaultSlots: 1}, time.Now, nil)
	if err := s.Lock(t.Context(), fleetlock.ClientParams{ID: "b", Group: "g"}); !errors.Is(err, errdefs.ErrConflict) {
		t.Errorf("after a restart, b got the slot a holds: %v", err)
	}
	if err := s.Lock(t.Context(), fleetlock.ClientParams{ID: "a", Group: "g"}); err != nil {
		t.Errorf("after a restart, a lost its slot: %v", err)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	cfg, err := ParseConfig(strings.NewReader(`
[lock]
default_slots = 2
lease = "90m"
strict_groups = true
[[lock.groups]]
name = "db"
slots = 1
time_zone = "UTC"
[[lock.groups.window]]
days = ["Sat"]
start_time = "02:00"
length_minutes = 60
`), "lock.toml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DefaultSlots != 2 || cfg.Lease != 90*time.Minute || !cfg.StrictGroups || cfg.Groups["db"].Slots != 1 || cfg.Groups["db"].Windows.Length() != 60 || cfg.Groups["default"].Slots != 2 {
		t.Errorf("ParseConfig = %+v", cfg)
	}
	for name, bad := range map[string]string{
		"misspelt key":    "[lock]\ndefault_slot = 2\n",
		"misspelt window": "[[lock.groups]]\nname = \"a\"\n[[lock.groups.windows]]\ndays = [\"Sat\"]\n",
		"bad lease":       "[lock]\nlease = \"soon\"\n",
		"bad group":       "[[lock.groups]]\nname = \"a b\"\n",
		"bad day":         "[[lock.groups]]\nname = \"a\"\n[[lock.groups.window]]\ndays = [\"Xyz\"]\nstart_time = \"01:00\"\nlength_minutes = 5\n",
	} {
		if _, err := ParseConfig(strings.NewReader(bad), "lock.toml"); err == nil || !strings.Contains(err.Error(), "lock.toml") {
			t.Errorf("ParseConfig(%s) = %v, want an error naming the file", name, err)
		}
	}
}
