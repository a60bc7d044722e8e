// Package lockserver is strata's FleetLock server: reboot slots per group, kept in a Store (an
// embedded bbolt file for one server, or etcd v3 in airlock's key layout for a highly available
// fleet), plus what airlock lacks: a lease after which a holder that never reported steady state is
// released, the holders of each group readable over HTTP, a forced release that leaves an audit
// record, and maintenance windows per group enforced by the server.
//
// Endpoints: POST /v1/pre-reboot and /v1/steady-state (the protocol, docs/formats/fleetlock.md);
// GET /v1/groups/GROUP (slots, holders and since when, window state); POST
// /v1/groups/GROUP/release {"id","reason"} (forced release); GET /v1/audit; GET /metrics.
//
// Layer L4 (servers).
package lockserver
