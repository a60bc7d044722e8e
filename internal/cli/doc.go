// Package cli holds strata's cobra commands. Each command parses flags,
// calls one library function and prints text or --json through
// cmd.OutOrStdout(); long work shows a progress bar on a terminal and stays
// quiet in pipes. There is one file per command; NewRootCommand (root.go)
// lists every command explicitly, with no registration through init.
// Layer L4: it may import any package below it; nothing imports it.
package cli
