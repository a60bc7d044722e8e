// Package fleetlock is the FleetLock protocol that nodes use to take one of a few reboot slots of
// their group before they reboot into an update, and to give it back once the new boot is good:
// the wire types, the semaphore that a lock server keeps per group, and a client.
//
// The protocol (docs/formats/fleetlock.md) has two calls, both POST with the header
// `fleet-lock-protocol: true` and the body {"client_params":{"id":ID,"group":GROUP}}:
// /v1/pre-reboot takes a slot (recursive: a holder asking again succeeds), /v1/steady-state
// releases any slot the id holds (a non-holder's release succeeds too). Any 2xx is success;
// errors carry {"kind","value"}. All state lives on the server, so calls may repeat and need
// not balance.
//
// The semaphore's JSON form is airlock's ({"total_slots":N,"holders":[sorted ids]}), so a fleet
// can move between airlock and strata on the same etcd keys. strata adds the time each holder
// took its slot under "strata_acquired", which airlock ignores.
//
// Layer L1 (wire formats): standard library and internal/errdefs only.
package fleetlock
