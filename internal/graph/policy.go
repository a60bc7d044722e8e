package graph

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strconv"
	"time"
)

// Wariness is a node's place in a staged rollout, from 0.0 (takes a release as soon as its rollout
// starts) to 1.0 (takes it last). A node that states its wariness gets that value, clamped to
// [0, 1]; otherwise it is derived from the node's id, so that one node always has the same place
// and a fleet's places spread evenly. The derivation is SHA-256 of the id scaled into
// (0.000001, 1.0]: stable across servers and versions, which the reference policy engine's
// hasher is not (nobody relies on its exact values, so nothing is lost).
func Wariness(stated string, nodeUUID string) float64 {
	if stated != "" {
		if w, err := strconv.ParseFloat(stated, 64); err == nil && !math.IsNaN(w) {
			return min(max(w, 0), 1)
		}
	}
	sum := sha256.Sum256([]byte(nodeUUID))
	scaled := float64(binary.BigEndian.Uint64(sum[:8])) / float64(math.MaxUint64)
	return min(max(scaled, 0.000001), 1)
}

// rolloutParams are a rollout node's parameters, with the reference policy's defaults: start
// epoch 0, start value 0.0, no duration (no progress); a duration shorter than a minute is one
// minute. Unparseable values take the defaults.
type rolloutParams struct {
	start      int64
	startValue float64
	minutes    uint64 // 0: no duration
}

func paramsOf(n Node) rolloutParams {
	var p rolloutParams
	if v, err := strconv.ParseInt(n.Metadata[KeyStartEpoch], 10, 64); err == nil {
		p.start = v
	}
	if v, err := strconv.ParseFloat(n.Metadata[KeyStartValue], 64); err == nil && !math.IsNaN(v) {
		p.startValue = v
	}
	if s, ok := n.Metadata[KeyDuration]; ok {
		if v, err := strconv.ParseUint(s, 10, 64); err == nil {
			p.minutes = max(v, 1)
		}
	}
	return p
}

// Throttling returns the fraction of the fleet that may take a rollout node at now: 0 before its
// start, rising linearly from its start value to 1 over its duration, and 1 after; without a
// duration it stays at the start value. A node whose wariness is above it does not see the
// release. Nodes that are not rollouts are not throttled (1).
func Throttling(n Node, now time.Time) float64 {
	if !n.Rollout() {
		return 1
	}
	p := paramsOf(n)
	t := now.Unix()
	if t < p.start {
		return 0
	}
	if p.minutes == 0 {
		return p.startValue
	}
	secs := int64(min(p.minutes, math.MaxInt64/60)) * 60
	end := p.start + secs
	if end < p.start { // overflow
		end = math.MaxInt64
	}
	if t > end {
		return 1
	}
	return p.startValue + (1-p.startValue)*float64(t-p.start)/float64(end-p.start)
}

// Throttle hides from a node of the given wariness the rollouts that have not reached it yet: it
// removes every edge leading to such a release. It returns the graph and which nodes it hid.
func Throttle(g Graph, wariness float64, now time.Time) (Graph, []bool) {
	hidden := make([]bool, len(g.Nodes))
	any := false
	for i, n := range g.Nodes {
		if n.Rollout() && wariness > Throttling(n, now) {
			hidden[i] = true
			any = true
		}
	}
	if !any {
		return g, hidden
	}
	out := Graph{Nodes: g.Nodes, Edges: make([][2]int64, 0, len(g.Edges))}
	for _, e := range g.Edges {
		if !hidden[e[1]] {
			out.Edges = append(out.Edges, e)
		}
	}
	return out, hidden
}

// Eligibility says from when a node of some wariness may take a rollout release.
type Eligibility struct {
	Version string `json:"version"`
	Payload string `json:"payload"`
	// Eligible is true when the node sees the release now.
	Eligible bool `json:"eligible"`
	// From is when the node starts to see it; nil when it never will (a rollout without a
	// duration that stays below the node's wariness). For a release that is not rolled out, or
	// whose rollout already reached the node, it is the rollout's start (or nil for no rollout).
	From *time.Time `json:"from,omitempty"`
	// Throttling is the fraction of the fleet that may take the release now.
	Throttling float64 `json:"throttling"`
}

// EligibleFrom returns when a node of the given wariness first sees rollout node n: the first
// second at which Throttling(n) >= wariness. ok is false when that never happens.
func EligibleFrom(n Node, wariness float64) (from time.Time, ok bool) {
	p := paramsOf(n)
	if !n.Rollout() {
		return time.Time{}, false
	}
	if wariness <= p.startValue {
		return time.Unix(p.start, 0).UTC(), true
	}
	if p.minutes == 0 {
		return time.Time{}, false
	}
	secs := float64(min(p.minutes, math.MaxInt64/60) * 60)
	frac := (wariness - p.startValue) / (1 - p.startValue)
	off := int64(math.Ceil(frac * secs))
	t := time.Unix(p.start+off, 0).UTC()
	// Rounding: step forward to the first second the linear ramp really admits the node.
	for i := 0; i < 3 && Throttling(n, t) < wariness; i++ {
		t = t.Add(time.Second)
	}
	return t, true
}

// EligibilityOf lists, for a node of the given wariness, every release reachable from the node
// whose payload is booted (all rollout releases when booted is empty) and when it becomes
// eligible. g is the unthrottled graph.
func EligibilityOf(g Graph, booted string, wariness float64, now time.Time) []Eligibility {
	var targets []int
	if booted == "" {
		for i := range g.Nodes {
			targets = append(targets, i)
		}
	} else {
		for i, n := range g.Nodes {
			if n.Payload == booted {
				targets = append(targets, g.Successors(i)...)
			}
		}
	}
	out := []Eligibility{}
	for _, i := range targets {
		n := g.Nodes[i]
		e := Eligibility{Version: n.Version, Payload: n.Payload, Throttling: Throttling(n, now)}
		e.Eligible = !n.Rollout() || wariness <= e.Throttling
		if t, ok := EligibleFrom(n, wariness); ok {
			e.From = &t
		}
		out = append(out, e)
	}
	return out
}
