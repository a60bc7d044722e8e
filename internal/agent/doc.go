// Package agent is the node's update agent: it asks the release graph where to go next, stages
// the update, and reboots into it only when its strategy allows (at once, inside maintenance
// windows, with a fleet-wide reboot slot, or windows and a slot together). It is configured by
// Zincati's TOML drop-ins (Zincati's own fragments are read unchanged), identifies the node as
// Zincati does, and follows Zincati's state machine, with what Zincati's users miss: unknown keys
// are errors, a staged update is replaced when a newer release appears, a release the node rolled
// back from is never tried again (a persistent deny list), status and metrics over a local socket,
// the download size known before the download, and "check now" / "apply now" that go through the
// same state machine. docs/agent.md has the whole story.
//
// The agent sees the node through small interfaces (Deployer, GraphSource, Strategy, Sessions);
// the command line wires in the sysroot, the graph client, the fleet lock client and logind.
//
// Layer L3 (services).
package agent
