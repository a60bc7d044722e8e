package graph

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/strata-os/strata/internal/errdefs"
)

// Metadata keys of a graph node, as Fedora CoreOS's graph builder writes them and Zincati reads
// them. Every value is a string, numbers and booleans included.
const (
	KeyAgeIndex      = "org.fedoraproject.coreos.releases.age_index"
	KeyScheme        = "org.fedoraproject.coreos.scheme"
	KeyBarrier       = "org.fedoraproject.coreos.updates.barrier"
	KeyBarrierReason = "org.fedoraproject.coreos.updates.barrier_reason"
	KeyDeadend       = "org.fedoraproject.coreos.updates.deadend"
	KeyDeadendReason = "org.fedoraproject.coreos.updates.deadend_reason"
	KeyRollout       = "org.fedoraproject.coreos.updates.rollout"
	KeyStartEpoch    = "org.fedoraproject.coreos.updates.start_epoch"
	KeyStartValue    = "org.fedoraproject.coreos.updates.start_value"
	KeyDuration      = "org.fedoraproject.coreos.updates.duration_minutes"
)

// Scheme says what a node's payload names.
type Scheme string

const (
	// SchemeChecksum: the payload is an OSTree commit checksum.
	SchemeChecksum Scheme = "checksum"
	// SchemeOCI: the payload is an image reference pinned by digest (NAME@sha256:...).
	SchemeOCI Scheme = "oci"
)

// Node is one release of the graph.
type Node struct {
	Version  string            `json:"version"`
	Payload  string            `json:"payload"`
	Metadata map[string]string `json:"metadata"`
}

// Graph is the Cincinnati wire form: releases and the update paths between them, each edge a
// pair of indexes into Nodes (from, to).
type Graph struct {
	Nodes []Node     `json:"nodes"`
	Edges [][2]int64 `json:"edges"`
}

// AgeIndex returns the node's position in its stream's release history (newer is larger).
func (n Node) AgeIndex() (uint64, error) {
	i, err := n.ageIndex()
	if err != nil {
		return 0, fmt.Errorf("release %q: %v: %w", n.Version, err, errdefs.ErrInvalid)
	}
	return i, nil
}

func (n Node) ageIndex() (uint64, error) {
	v, ok := n.Metadata[KeyAgeIndex]
	if !ok {
		return 0, fmt.Errorf("no %s", KeyAgeIndex)
	}
	i, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%s %q is not an unsigned integer", KeyAgeIndex, v)
	}
	return i, nil
}

// Scheme returns the node's payload scheme.
func (n Node) Scheme() Scheme { return Scheme(n.Metadata[KeyScheme]) }

// Deadend reports whether the release is a dead end (no update leads away from it), and why.
func (n Node) Deadend() (bool, string) {
	return n.Metadata[KeyDeadend] == "true", n.Metadata[KeyDeadendReason]
}

// Barrier reports whether every older release must pass through this one.
func (n Node) Barrier() bool { return n.Metadata[KeyBarrier] == "true" }

// Rollout reports whether the release is being rolled out gradually.
func (n Node) Rollout() bool { return n.Metadata[KeyRollout] == "true" }

// Successors returns the indexes of the nodes that edges lead to from node i.
func (g Graph) Successors(i int) []int {
	var out []int
	for _, e := range g.Edges {
		if e[0] == int64(i) {
			out = append(out, int(e[1]))
		}
	}
	return out
}

// Limits of a graph read from the network: a 200-release stream's graph is about 60 KB, so
// these leave room for streams a hundred times larger and still bound a hostile answer.
const (
	MaxBodyBytes = 16 << 20
	MaxNodes     = 100_000
	MaxEdges     = 1_000_000
)

// Decode reads a graph from r and checks its structure: at most MaxBodyBytes, every node with
// a version, a payload, a known scheme and an age_index, every edge between existing nodes and
// no edge from a node to itself. A graph that fails any check is refused whole (ErrInvalid):
// an agent acts on no part of a graph it cannot fully read.
func Decode(r io.Reader) (Graph, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxBodyBytes+1))
	if err != nil {
		return Graph{}, fmt.Errorf("reading the graph: %w", err)
	}
	if len(data) > MaxBodyBytes {
		return Graph{}, fmt.Errorf("graph larger than %d bytes: %w", MaxBodyBytes, errdefs.ErrInvalid)
	}
	var g Graph
	if err := json.Unmarshal(data, &g); err != nil {
		return Graph{}, fmt.Errorf("decoding the graph: %v: %w", err, errdefs.ErrInvalid)
	}
	if err := g.Validate(); err != nil {
		return Graph{}, err
	}
	return g, nil
}

// Validate checks the structure Decode promises.
func (g Graph) Validate() error {
	if len(g.Nodes) > MaxNodes {
		return fmt.Errorf("graph has %d nodes, more than %d: %w", len(g.Nodes), MaxNodes, errdefs.ErrInvalid)
	}
	if len(g.Edges) > MaxEdges {
		return fmt.Errorf("graph has %d edges, more than %d: %w", len(g.Edges), MaxEdges, errdefs.ErrInvalid)
	}
	var errs []error
	for i, n := range g.Nodes {
		if n.Version == "" || n.Payload == "" {
			errs = append(errs, fmt.Errorf("nodes[%d]: empty version or payload", i))
			continue
		}
		if s := n.Scheme(); s != SchemeChecksum && s != SchemeOCI {
			errs = append(errs, fmt.Errorf("nodes[%d] (%s): unknown scheme %q", i, n.Version, s))
		}
		if _, err := n.ageIndex(); err != nil {
			errs = append(errs, fmt.Errorf("nodes[%d] (%s): %v", i, n.Version, err))
		}
		if len(errs) >= 10 {
			break
		}
	}
	for i, e := range g.Edges {
		if e[0] < 0 || e[1] < 0 || e[0] >= int64(len(g.Nodes)) || e[1] >= int64(len(g.Nodes)) {
			errs = append(errs, fmt.Errorf("edges[%d] = [%d,%d]: outside the %d nodes", i, e[0], e[1], len(g.Nodes)))
		} else if e[0] == e[1] {
			errs = append(errs, fmt.Errorf("edges[%d] leads from node %d to itself", i, e[0]))
		}
		if len(errs) >= 10 {
			break
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("invalid graph: %w: %w", errors.Join(errs...), errdefs.ErrInvalid)
	}
	return nil
}
