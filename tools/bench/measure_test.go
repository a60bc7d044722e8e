package main

import (
	"context"
	"errors"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFromRusage(t *testing.T) {
	t.Parallel()
	ru := &syscall.Rusage{
		Utime:  syscall.Timeval{Sec: 2, Usec: 500000},
		Stime:  syscall.Timeval{Sec: 0, Usec: 250},
		Maxrss: 2048, // KiB on Linux
	}
	got := fromRusage(ru)
	want := sample{User: 2500 * time.Millisecond, Sys: 250 * time.Microsecond, MaxRSS: 2 << 20}
	if got != want {
		t.Errorf("fromRusage(%+v) = %+v, want %+v", ru, got, want)
	}
	if cpu := got.CPU(); cpu != 2500250*time.Microsecond {
		t.Errorf("CPU() = %v, want 2.50025s", cpu)
	}
}

func TestExecute(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	t.Run("success measures the child", func(t *testing.T) {
		t.Parallel()
		// Allocate and touch ~32 MiB so that the peak RSS is visibly the child's.
		r, err := execute(context.Background(), dir, []string{"/bin/sh", "-c", `head -c 33554432 /dev/zero | tail -c 1 >/dev/null; pwd`})
		if err != nil {
			t.Fatalf("execute() error = %v", err)
		}
		if strings.TrimSpace(r.stdout) != dir {
			t.Errorf("execute() stdout = %q, want the working directory %q", r.stdout, dir)
		}
		if r.Wall <= 0 || r.MaxRSS <= 0 {
			t.Errorf("execute() sample = %+v, want positive wall time and RSS", r.sample)
		}
	})
	t.Run("failure carries stderr", func(t *testing.T) {
		t.Parallel()
		_, err := execute(context.Background(), dir, []string{"/bin/sh", "-c", "echo first >&2; echo 'cannot open repo' >&2; exit 3"})
		var ce *cmdError
		if !errors.As(err, &ce) {
			t.Fatalf("execute() error = %v, want a *cmdError", err)
		}
		if got, want := shortError(err), "exit status 3: cannot open repo"; got != want {
			t.Errorf("shortError() = %q, want %q", got, want)
		}
		if got := details(err); !strings.Contains(got, "    | first\n    | cannot open repo") {
			t.Errorf("details() = %q, want the indented stderr", got)
		}
	})
}

func TestTail(t *testing.T) {
	t.Parallel()
	if got, want := tail("a\nb\nc\n", 2), "... (1 lines cut)\nb\nc"; got != want {
		t.Errorf("tail(a b c, 2) = %q, want %q", got, want)
	}
	if got, want := tail("a\n", 2), "a"; got != want {
		t.Errorf("tail(a, 2) = %q, want %q", got, want)
	}
}

// TestMain lets the test binary play the measuring child that execute starts (os.Executable
// is the test binary here).
func TestMain(m *testing.M) {
	if len(os.Args) > 1 && os.Args[1] == childFlag {
		os.Exit(runMeasuredChild(os.Args[2:]))
	}
	os.Exit(m.Run())
}

// TestExecuteRSSIsTheCommands checks that a large harness does not show up in the peak RSS of
// a small command (Linux keeps the peak RSS across execve).
func TestExecuteRSSIsTheCommands(t *testing.T) {
	big := make([]byte, 256<<20)
	for i := 0; i < len(big); i += 4096 {
		big[i] = 1
	}
	r, err := execute(context.Background(), t.TempDir(), []string{"/bin/true"})
	runtime.KeepAlive(big)
	if err != nil {
		t.Fatalf("execute(true) error = %v", err)
	}
	if r.MaxRSS <= 0 || r.MaxRSS > 64<<20 {
		t.Errorf("execute(true) peak RSS = %d bytes, want between 0 and 64 MiB (the harness holds 256 MiB)", r.MaxRSS)
	}
}

// TestExecuteWallIsTheCommands checks that the wall time is the command's, measured by the
// measuring child around it: a command that sleeps 300 ms takes at least that, and less
// than the harness saw from before it started the child.
func TestExecuteWallIsTheCommands(t *testing.T) {
	start := time.Now()
	r, err := execute(context.Background(), t.TempDir(), []string{"/bin/sleep", "0.3"})
	outer := time.Since(start)
	if err != nil {
		t.Fatalf("execute(sleep) error = %v", err)
	}
	if r.Wall < 300*time.Millisecond || r.Wall >= outer {
		t.Errorf("execute(sleep 0.3) wall = %v, want at least 300ms and less than the %v around it", r.Wall, outer)
	}
}
