// Package fleetsim holds the fleet simulation: hundreds of update agents in one process, each
// with a fake node and a shared fake clock, against the real graph and lock servers over loopback
// HTTP. It is a test-only package.
package fleetsim
