// Command strata is the single binary of the strata image-based OS stack.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"

	"github.com/strata-os/strata/internal/cli"
)

func main() {
	stopProfile := startCPUProfile(os.Getenv("STRATA_CPUPROFILE"))
	stopTrace := startTrace(os.Getenv("STRATA_TRACE"))
	code := cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stopTrace()
	stopProfile()
	os.Exit(code)
}

// startCPUProfile writes a CPU profile of the whole command to path when it is set (for
// measuring, as in docs/benchmarks.md); the returned function ends it.
func startCPUProfile(path string) func() {
	return startRecording("STRATA_CPUPROFILE", path, pprof.StartCPUProfile, pprof.StopCPUProfile)
}

// startTrace writes an execution trace of the whole command (runtime/trace: which goroutines
// ran, blocked and waited in system calls, when) to path when it is set; `go tool trace`
// reads it. The returned function ends it.
func startTrace(path string) func() {
	return startRecording("STRATA_TRACE", path, trace.Start, trace.Stop)
}

func startRecording(env, path string, start func(w io.Writer) error, stop func()) func() {
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		err = start(f)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata: %s: %v\n", env, err)
		return func() {}
	}
	return func() {
		stop()
		f.Close()
	}
}
