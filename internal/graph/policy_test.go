package graph

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func rolloutNode(start int64, startValue string, minutes string) Node {
	m := map[string]string{KeyRollout: "true", KeyAgeIndex: "1", KeyScheme: "checksum", KeyStartEpoch: fmt.Sprint(start)}
	if startValue != "" {
		m[KeyStartValue] = startValue
	}
	if minutes != "" {
		m[KeyDuration] = minutes
	}
	return Node{Version: "2", Payload: "c-2", Metadata: m}
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	const start = 1_000_000
	at := func(off int64) time.Time { return time.Unix(start+off, 0) }
	tests := []struct {
		name string
		n    Node
		now  time.Time
		want float64
	}{
		{"before the start", rolloutNode(start, "0.5", "60"), at(-1), 0},
		{"at the start", rolloutNode(start, "0.5", "60"), at(0), 0.5},
		{"half way", rolloutNode(start, "0", "60"), at(1800), 0.5},
		{"a quarter from 0.2", rolloutNode(start, "0.2", "60"), at(900), 0.4},
		{"after the end", rolloutNode(start, "0", "60"), at(3601), 1},
		{"no duration stays at the start value", rolloutNode(start, "0.3", ""), at(1 << 30), 0.3},
		{"zero minutes is one minute", rolloutNode(start, "0", "0"), at(30), 0.5},
		{"garbage values take the defaults", Node{Metadata: map[string]string{KeyRollout: "true", KeyStartEpoch: "x", KeyStartValue: "y"}}, at(0), 0},
		{"huge duration does not overflow", rolloutNode(start, "0", "18446744073709551615"), at(3600), 0},
		{"not a rollout", Node{Metadata: map[string]string{}}, at(0), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Throttling(tt.n, tt.now); math.Abs(got-tt.want) > 1e-6 {
				t.Errorf("Throttling = %v, want %v", got, tt.want)
			}
		})
	}
}

// The eligible fraction of a fleet follows the ramp: of 10,000 node ids, the share that sees a
// rollout at each point is the throttling value, within sampling error; and each node's
// EligibleFrom is the first second it sees the release.
func TestRolloutRamp(t *testing.T) {
	t.Parallel()
	const start = 1_700_000_000
	n := rolloutNode(start, "0.1", "100")
	g := Graph{Nodes: []Node{{Version: "1", Payload: "c-1", Metadata: map[string]string{KeyAgeIndex: "0", KeyScheme: "checksum"}}, n},
		Edges: [][2]int64{{0, 1}}}
	const fleet = 10000
	for _, minute := range []int64{-1, 0, 25, 50, 99, 101} {
		now := time.Unix(start+minute*60, 0)
		seen := 0
		for i := 0; i < fleet; i++ {
			w := Wariness("", fmt.Sprintf("%032x", i))
			tg, _ := Throttle(g, w, now)
			if len(tg.Edges) == 1 {
				seen++
			}
			if from, ok := EligibleFrom(n, w); !ok || (now.Before(from) == (len(tg.Edges) == 1)) {
				t.Fatalf("node %d (wariness %v) at %v: sees=%v but EligibleFrom = %v, %v", i, w, now, len(tg.Edges) == 1, from, ok)
			}
		}
		want := Throttling(n, now)
		if got := float64(seen) / fleet; math.Abs(got-want) > 0.02 {
			t.Errorf("minute %d: %.3f of the fleet sees the rollout, want %.3f", minute, got, want)
		}
	}
}

func TestWariness(t *testing.T) {
	t.Parallel()
	if w := Wariness("0.25", "x"); w != 0.25 {
		t.Errorf("Wariness(stated 0.25) = %v", w)
	}
	if w := Wariness("7", "x"); w != 1 {
		t.Errorf("Wariness(stated 7) = %v, want clamped to 1", w)
	}
	if w := Wariness("-1", "x"); w != 0 {
		t.Errorf("Wariness(stated -1) = %v, want clamped to 0", w)
	}
	a, b := Wariness("", "27e3ac02af3946af995c9940e18b0cce"), Wariness("nan", "27e3ac02af3946af995c9940e18b0cce")
	if a != b || a <= 0 || a > 1 {
		t.Errorf("Wariness from the id = %v and %v, want the same value in (0, 1]", a, b)
	}
	if Wariness("", "a") == Wariness("", "b") {
		t.Error("two ids got the same wariness")
	}
}

func TestEligibilityOf(t *testing.T) {
	t.Parallel()
	const start = 1_700_000_000
	g := Build(index("1", "2", "3"), Updates{Releases: []UpdateRelease{
		{Version: "2", Metadata: UpdateMetadata{Barrier: &Reason{}}},
		{Version: "3", Metadata: UpdateMetadata{Rollout: &Rollout{StartEpoch: ptr(int64(start)), DurationMinutes: ptr(uint64(60))}}},
	}}, Scope{Basearch: "x86_64"})
	el := EligibilityOf(g, "c-2", 0.5, time.Unix(start+60, 0))
	if len(el) != 1 || el[0].Version != "3" || el[0].Eligible || el[0].From == nil || el[0].From.Unix() != start+1800 {
		t.Fatalf("EligibilityOf(booted 2, wariness 0.5) = %+v, want release 3 not yet eligible, from start+30m", el)
	}
	el = EligibilityOf(g, "c-1", 0.5, time.Unix(start+60, 0))
	if len(el) != 1 || el[0].Version != "2" || !el[0].Eligible {
		t.Fatalf("EligibilityOf(booted 1) = %+v, want the barrier 2, eligible", el)
	}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	good := `{"nodes":[{"version":"1","payload":"a","metadata":{"` + KeyAgeIndex + `":"0","` + KeyScheme + `":"checksum"}},
		{"version":"2","payload":"b","metadata":{"` + KeyAgeIndex + `":"1","` + KeyScheme + `":"checksum"}}],"edges":[[0,1]]}`
	g, err := Decode(strings.NewReader(good))
	if err != nil || len(g.Successors(0)) != 1 {
		t.Fatalf("Decode(good) = %+v, %v", g, err)
	}
	node := `{"version":"1","payload":"a","metadata":{"` + KeyAgeIndex + `":"0","` + KeyScheme + `":"checksum"}}`
	for name, bad := range map[string]string{
		"edge out of range":  `{"nodes":[` + node + `],"edges":[[0,1]]}`,
		"negative edge":      `{"nodes":[` + node + `],"edges":[[-1,0]]}`,
		"self loop":          `{"nodes":[` + node + `],"edges":[[0,0]]}`,
		"no age index":       `{"nodes":[{"version":"1","payload":"a","metadata":{"` + KeyScheme + `":"checksum"}}],"edges":[]}`,
		"unknown scheme":     `{"nodes":[{"version":"1","payload":"a","metadata":{"` + KeyAgeIndex + `":"0","` + KeyScheme + `":"ftp"}}],"edges":[]}`,
		"empty payload":      `{"nodes":[{"version":"1","payload":"","metadata":{}}],"edges":[]}`,
		"not json":           `<html>`,
		"edge of three ints": `{"nodes":[` + node + `],"edges":[[0,0,0]]}`,
		"huge body":          `{"nodes":[],"edges":[],"pad":"` + strings.Repeat("x", MaxBodyBytes) + `"}`,
	} {
		if _, err := Decode(strings.NewReader(bad)); err == nil {
			t.Errorf("Decode(%s) succeeded, want an error", name)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"nodes":[{"version":"1","payload":"a","metadata":{"` + KeyAgeIndex + `":"0","` + KeyScheme + `":"checksum"}}],"edges":[]}`))
	f.Add([]byte(`{"nodes":[],"edges":[[0,1]]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := Decode(strings.NewReader(string(data)))
		if err != nil {
			return
		}
		for i := range g.Nodes {
			for _, s := range g.Successors(i) {
				if s < 0 || s >= len(g.Nodes) {
					t.Fatalf("successor %d of %d outside %d nodes", s, i, len(g.Nodes))
				}
			}
		}
		tg, _ := Throttle(g, 0.5, time.Unix(0, 0))
		_ = FilterDeadends(tg)
	})
}
