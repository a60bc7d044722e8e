// Package graph is the release graph that nodes follow: the Cincinnati wire format that Fedora
// CoreOS's update service speaks and Zincati reads, the inputs it is built from (a stream's
// releases.json and updates/STREAM.json), the rules that turn them into edges (barriers,
// dead-ends, rollouts) and the per-node policy that hides a rollout from a node until the node's
// wariness lets it in.
//
// Everything here is pure: it takes values and a clock reading and returns values. The HTTP
// server is internal/graphserver; the agent that reads the graph is a separate service.
//
// A worked example. releases.json lists v1, v2, v3, v4 (age_index 0..3); updates/stable.json
// marks v2 a barrier and v4 a rollout that starts at T with start_percentage 0 over 60 minutes.
// Build gives the edges v1→v2 (the barrier: every older release must pass through it), and
// v2→v4, v3→v4 (the rollout: from the last barrier up to it). v3 is neither a barrier nor a
// rollout, so no edge leads to it: a release gets edges only by being announced in the updates
// file. A node of wariness 0.5 asking at T+20m sees v4 throttled at 0.33 < 0.5, so the edges to
// v4 are hidden from it; at T+30m it sees them. docs/formats/cincinnati.md has the rules.
//
// Layer L1 (wire formats): standard library and internal/errdefs only.
package graph
