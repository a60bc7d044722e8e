// Command strata is the single binary of the strata image-based OS stack.
package main

import (
	"fmt"
	"os"
	"runtime/pprof"

	"github.com/strata-os/strata/internal/cli"
)

func main() {
	stop := startCPUProfile(os.Getenv("STRATA_CPUPROFILE"))
	code := cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// startCPUProfile writes a CPU profile of the whole command to path when it is set (for
// measuring, as in docs/benchmarks.md); the returned function ends it.
func startCPUProfile(path string) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: STRATA_CPUPROFILE: %v\n", err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}
}
