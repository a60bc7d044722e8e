package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// sample is one measured run of one command.
type sample struct {
	Wall   time.Duration `json:"wall_ns"`
	User   time.Duration `json:"user_ns"`
	Sys    time.Duration `json:"sys_ns"`
	MaxRSS int64         `json:"max_rss_bytes"`
	// Bytes is the data the op moved over the network, for ops that count it (pull).
	Bytes int64 `json:"transferred_bytes,omitempty"`
}

// CPU is the child's user plus system time.
func (s sample) CPU() time.Duration { return s.User + s.Sys }

// fromRusage converts the rusage wait4 reports for a child. On Linux it covers the child and
// the descendants it waited for; Maxrss is in KiB there.
func fromRusage(ru *syscall.Rusage) sample {
	return sample{
		User:   time.Duration(ru.Utime.Nano()),
		Sys:    time.Duration(ru.Stime.Nano()),
		MaxRSS: ru.Maxrss * 1024,
	}
}

// run is the outcome of one command.
type run struct {
	sample
	stdout, stderr string
}

// execute runs argv in dir with no stdin and measures it. A non-zero exit is an error that
// carries the tail of stderr. The command runs under a fresh copy of this binary (see
// runMeasuredChild) so that its peak RSS is its own, not the harness's.
func execute(ctx context.Context, dir string, argv []string) (run, error) {
	self, err := os.Executable()
	if err != nil {
		return run{}, fmt.Errorf("finding the bench binary: %w", err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		return run{}, err
	}
	defer pr.Close()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, self, append([]string{childFlag}, argv...)...)
	cmd.Dir = dir
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.ExtraFiles = []*os.File{pw}
	start := time.Now()
	err = cmd.Start()
	pw.Close()
	var rep childReport
	var decErr error
	if err == nil {
		decErr = json.NewDecoder(pr).Decode(&rep)
		err = cmd.Wait()
	}
	wall := time.Since(start)
	r := run{stdout: stdout.String(), stderr: stderr.String()}
	if decErr == nil {
		r.sample = fromRusage(&rep.Rusage)
		// The command's own wall time, measured by the child around its fork and wait.
		wall = time.Duration(rep.WallNS)
	}
	r.Wall = wall
	if err == nil && decErr != nil {
		err = fmt.Errorf("reading the rusage of the command: %w", decErr)
	}
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%v)", err, ctx.Err())
		}
		return r, &cmdError{argv: argv, err: err, stderr: r.stderr}
	}
	return r, nil
}

// cmdError is a failed command with its stderr, which the harness prints.
type cmdError struct {
	argv   []string
	err    error
	stderr string
}

func (e *cmdError) Error() string {
	return fmt.Sprintf("%s: %v", strings.Join(e.argv, " "), e.err)
}

func (e *cmdError) Unwrap() error { return e.err }

// details returns the message and the last lines of stderr, for the log.
func details(err error) string {
	var ce *cmdError
	if !errors.As(err, &ce) || strings.TrimSpace(ce.stderr) == "" {
		return err.Error()
	}
	return err.Error() + "\n" + indent(tail(ce.stderr, 30), "    | ")
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{fmt.Sprintf("... (%d lines cut)", len(lines)-n)}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n")
}

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(s, "\n", "\n"+prefix)
}

// cacheDropper empties the page cache before each measured step so every step starts cold.
// It only works as root; otherwise reason says why it does nothing.
type cacheDropper struct {
	enabled bool
	reason  string
}

func newCacheDropper(want bool) *cacheDropper {
	switch {
	case !want:
		return &cacheDropper{reason: "disabled by -drop-caches=false"}
	case os.Geteuid() != 0:
		return &cacheDropper{reason: "not root"}
	}
	d := &cacheDropper{enabled: true}
	if err := d.drop(); err != nil {
		return &cacheDropper{reason: err.Error()}
	}
	return d
}

func (d *cacheDropper) drop() error {
	if !d.enabled {
		return nil
	}
	syscall.Sync()
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("dropping page cache: %w", err)
	}
	return nil
}

func (d *cacheDropper) String() string {
	if d.enabled {
		return "yes (sync; echo 3 > /proc/sys/vm/drop_caches before each measured step)"
	}
	return "no (" + d.reason + ")"
}

// shortError is a one-line form of err for a table cell: the exit status and the last line of
// stderr for a failed command.
func shortError(err error) string {
	var ce *cmdError
	if !errors.As(err, &ce) {
		return err.Error()
	}
	msg := ce.err.Error()
	if s := strings.TrimSpace(ce.stderr); s != "" {
		lines := strings.Split(s, "\n")
		msg += ": " + strings.TrimSpace(lines[len(lines)-1])
	}
	return msg
}
