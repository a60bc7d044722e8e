// Package cli holds strata's cobra commands. Each command parses flags,
// calls one library function and prints text or --json through
// cmd.OutOrStdout(); long work shows a progress bar on a terminal and stays
// quiet in pipes. Commands register themselves by group in init functions
// (one file per command), so adding one never touches another's file.
// Layer L4: it may import any package below it; nothing imports it.
package cli
