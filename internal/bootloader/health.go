package bootloader

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// DefaultCheckTimeout bounds one health check.
const DefaultCheckTimeout = 2 * time.Minute

// CheckResult is the outcome of one health check.
type CheckResult struct {
	Name     string        `json:"name"`
	Path     string        `json:"path"`
	Err      string        `json:"error,omitempty"` // "" when it passed
	Output   string        `json:"output,omitempty"`
	Duration time.Duration `json:"duration_ns"`
}

// RunChecks runs the executable regular files of dirs (absolute paths;
// missing directories are fine), sorted by name, each with timeout (0
// means DefaultCheckTimeout), and returns every result. A check fails
// when it exits non-zero, is killed, or runs out of time. The error is
// nil when all passed, else it names the failing checks.
func RunChecks(ctx context.Context, dirs []string, timeout time.Duration) ([]CheckResult, error) {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	checks := map[string]string{}
	for i := len(dirs) - 1; i >= 0; i-- { // earlier directories shadow later ones
		des, err := os.ReadDir(dirs[i])
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading health checks: %w", err)
		}
		for _, de := range des {
			p := filepath.Join(dirs[i], de.Name())
			fi, err := os.Stat(p)
			if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o111 == 0 {
				continue
			}
			checks[de.Name()] = p
		}
	}
	names := make([]string, 0, len(checks))
	for n := range checks {
		names = append(names, n)
	}
	slices.Sort(names)
	var (
		out    []CheckResult
		failed []string
	)
	for _, n := range names {
		r := runCheck(ctx, n, checks[n], timeout)
		if r.Err != "" {
			failed = append(failed, n+" ("+r.Err+")")
		}
		out = append(out, r)
	}
	if len(failed) > 0 {
		return out, fmt.Errorf("health checks failed: %s", strings.Join(failed, ", "))
	}
	return out, nil
}

func runCheck(ctx context.Context, name, path string, timeout time.Duration) CheckResult {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var buf bytes.Buffer
	cmd := exec.CommandContext(ctx, path)
	cmd.Stdout, cmd.Stderr = &buf, &buf
	cmd.WaitDelay = time.Second
	start := time.Now()
	err := cmd.Run()
	r := CheckResult{Name: name, Path: path, Duration: time.Since(start)}
	r.Output = strings.TrimSpace(buf.String())
	if len(r.Output) > 4096 {
		r.Output = r.Output[len(r.Output)-4096:]
	}
	switch {
	case err == nil:
	case ctx.Err() == context.DeadlineExceeded:
		r.Err = "timed out after " + timeout.String()
	default:
		r.Err = err.Error()
	}
	return r
}
