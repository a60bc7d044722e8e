// Package graphserver serves the release graph over HTTP as Fedora CoreOS's update service does:
// GET /v1/graph with Zincati's query parameters answers the graph of the node's stream and
// architecture, throttled by the node's rollout wariness. It also answers GET /v1/eligibility
// (a node's wariness and from when each release it can reach is eligible; strata's own
// endpoint) and GET /metrics (Prometheus text).
//
// The server is stateless apart from its inputs, which it rereads when their files change, so
// any number of them can run behind a load balancer. Answers are cached per stream, architecture,
// scheme and set of hidden rollouts, encoded once and gzip-compressed once (a 200-release answer
// of 44 KB is 2.4 KB in gzip, which Zincati accepts): a whole fleet polling maps onto a handful of
// distinct answers. A rollout's ramp moving on only moves nodes from one set to another; a reload
// of the inputs drops the cache with the graph it came from.
//
// Layer L4 (servers): it imports the graph format and nothing of the node.
package graphserver
