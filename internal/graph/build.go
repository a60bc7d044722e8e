package graph

import (
	"slices"
	"strconv"
)

// Scope selects the graph of one architecture, and whether its payloads are OS commits or OS
// images (a node that follows a registry asks with oci=true).
type Scope struct {
	Basearch string
	OCI      bool
}

// Build computes a stream's graph from its inputs, by the rules of Fedora CoreOS's graph builder
// (docs/formats/cincinnati.md):
//   - a release gets age_index = its position in releases.json, counted over all releases, and
//     becomes a node only when it has a payload for the scope's architecture;
//   - the updates file marks releases as barriers, dead ends and rollouts;
//   - every rollout R gets an edge from each node between the last barrier before it (or the
//     first node) and R; every barrier B that is not also a rollout gets an edge from each node
//     between the previous barrier (or the first node) and B;
//   - edges leaving a dead end are dropped.
//
// So a release that is neither a rollout nor a barrier gets no incoming edge, and nobody skips a
// barrier.
func Build(ri ReleaseIndex, u Updates, scope Scope) Graph {
	meta := map[string]UpdateMetadata{}
	for _, rel := range u.Releases {
		// A version listed twice merges its policies, later entries winning, as the reference
		// builder's repeated scans of the list do.
		m := meta[rel.Version]
		if rel.Metadata.Barrier != nil {
			m.Barrier = rel.Metadata.Barrier
		}
		if rel.Metadata.Deadend != nil {
			m.Deadend = rel.Metadata.Deadend
		}
		if rel.Metadata.Rollout != nil {
			m.Rollout = rel.Metadata.Rollout
		}
		meta[rel.Version] = m
	}
	g := Graph{Nodes: []Node{}, Edges: [][2]int64{}}
	for age, rel := range ri.Releases {
		payload, scheme := payloadFor(rel, scope)
		if payload == "" {
			continue
		}
		n := Node{Version: rel.Version, Payload: payload, Metadata: map[string]string{
			KeyAgeIndex: strconv.Itoa(age),
			KeyScheme:   string(scheme),
		}}
		m := meta[rel.Version]
		if m.Deadend != nil {
			n.Metadata[KeyDeadend] = "true"
			n.Metadata[KeyDeadendReason] = reasonOrGeneric(m.Deadend.Reason)
		}
		if m.Barrier != nil {
			n.Metadata[KeyBarrier] = "true"
			n.Metadata[KeyBarrierReason] = reasonOrGeneric(m.Barrier.Reason)
		}
		if ro := m.Rollout; ro != nil {
			n.Metadata[KeyRollout] = "true"
			if ro.StartEpoch != nil {
				n.Metadata[KeyStartEpoch] = strconv.FormatInt(*ro.StartEpoch, 10)
			}
			if ro.StartPercentage != nil {
				n.Metadata[KeyStartValue] = strconv.FormatFloat(*ro.StartPercentage, 'f', -1, 64)
			}
			if ro.DurationMinutes != nil {
				n.Metadata[KeyDuration] = strconv.FormatUint(*ro.DurationMinutes, 10)
			}
		}
		g.Nodes = append(g.Nodes, n)
	}
	g.Edges = computeEdges(g.Nodes)
	return FilterDeadends(g)
}

func payloadFor(rel Release, scope Scope) (string, Scheme) {
	var payload string
	if scope.OCI {
		for _, img := range rel.OCIImages {
			if img.Architecture == scope.Basearch && img.DigestRef != "" {
				payload = img.DigestRef
			}
		}
		return payload, SchemeOCI
	}
	for _, c := range rel.Commits {
		if c.Architecture == scope.Basearch && c.Checksum != "" {
			payload = c.Checksum
		}
	}
	return payload, SchemeChecksum
}

func reasonOrGeneric(r string) string {
	if r == "" {
		return "generic"
	}
	return r
}

func computeEdges(nodes []Node) [][2]int64 {
	var barriers []int
	for i, n := range nodes {
		if n.Barrier() {
			barriers = append(barriers, i)
		}
	}
	// lastBarrierBefore returns the index of the last barrier before i, or 0.
	lastBarrierBefore := func(i int) int {
		k, _ := slices.BinarySearch(barriers, i)
		if k == 0 {
			return 0
		}
		return barriers[k-1]
	}
	edges := [][2]int64{}
	for to := len(nodes) - 1; to >= 0; to-- {
		if !nodes[to].Rollout() {
			continue
		}
		for from := lastBarrierBefore(to); from < to; from++ {
			edges = append(edges, [2]int64{int64(from), int64(to)})
		}
	}
	start := 0
	for _, b := range barriers {
		if !nodes[b].Rollout() {
			for from := start; from < b; from++ {
				edges = append(edges, [2]int64{int64(from), int64(b)})
			}
		}
		start = b
	}
	return edges
}

// FilterDeadends drops every edge that leaves a dead end.
func FilterDeadends(g Graph) Graph {
	out := Graph{Nodes: g.Nodes, Edges: make([][2]int64, 0, len(g.Edges))}
	for _, e := range g.Edges {
		if dead, _ := g.Nodes[e[0]].Deadend(); !dead {
			out.Edges = append(out.Edges, e)
		}
	}
	return out
}
