// Package distro holds the fixed paths and tool names of a strata node and
// of the host tools strata runs, in one place (as coreos/ignition's
// internal/distro does), so that no other package spells them as literals.
//
// Paths are absolute paths on a node; code that works on a tree or a
// mounted root joins them beneath that root (filepath.Join(root, path)),
// never uses them against the host's "/" unless the root is "/".
//
// What it does not do: probe the host, read configuration, or let anything
// change the values at run time.
//
// Layer L0: standard library only.
package distro
