package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// childFlag makes the bench binary run as the measuring parent of one command (see
// runMeasuredChild). It is the first argument, so it never collides with the harness flags.
const childFlag = "-exec-measured-child"

// Linux keeps a process's peak RSS across execve, and Go starts a child with
// clone(CLONE_VM|CLONE_VFORK), so wait4 reports max(peak RSS of the forking process,
// peak RSS of the command). Measured straight from the harness, every tool would show at
// least the harness's own peak. The harness therefore runs each command through a fresh copy
// of this binary (a few MiB), which waits for the command and reports the command's rusage
// on file descriptor 3. The floor of the peak RSS column is that small process, not the
// harness.

// childReport is what the measuring child writes on fd 3: the command's rusage, and its wall
// time from just before the fork to the end of the wait, which leaves out the start of the
// measuring child itself (after a dropped page cache, reading this binary from disk).
type childReport struct {
	Rusage syscall.Rusage
	WallNS int64
}

// runMeasuredChild runs argv with the inherited stdin, stdout and stderr, writes a
// childReport as JSON to fd 3 and returns the exit code to exit with.
func runMeasuredChild(argv []string) int {
	report := os.NewFile(3, "rusage")
	if len(argv) == 0 || report == nil {
		fmt.Fprintln(os.Stderr, "bench: "+childFlag+" needs a command and fd 3")
		return 2
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	code := 0
	var exitErr *exec.ExitError
	switch {
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
		if code < 0 {
			code = 128 + int(exitErr.Sys().(syscall.WaitStatus).Signal())
		}
	case err != nil:
		fmt.Fprintf(os.Stderr, "bench: %v\n", err)
		return 127
	}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		if err := json.NewEncoder(report).Encode(childReport{Rusage: *ru, WallNS: int64(wall)}); err != nil {
			fmt.Fprintf(os.Stderr, "bench: reporting rusage: %v\n", err)
			return 127
		}
	}
	return code
}
