//go:build peer && root

package interop

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

var (
	// strataBin is the strata binary TestMain builds from this checkout.
	strataBin string
	// scratch holds what tests share through sync.Once (trees, tarballs, repositories); TestMain
	// removes it after the run.
	scratch string
)

func TestMain(m *testing.M) {
	flag.Parse()
	// The tests mostly wait on ostree and strata processes and the disk, not the CPU: run more of
	// them at once than GOMAXPROCS, unless -test.parallel says otherwise.
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "test.parallel" })
	if !explicit {
		flag.Set("test.parallel", "4")
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "strata-interop-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "creating the scratch directory: %v\n", err)
		return 1
	}
	defer os.RemoveAll(dir)
	scratch = dir
	if bin := os.Getenv("STRATA_BIN"); bin != "" {
		// A prebuilt binary, e.g. a release candidate, is tested as it is.
		strataBin = bin
		return m.Run()
	}
	strataBin = filepath.Join(dir, "strata")
	if err := buildStrata(strataBin); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

// buildStrata builds cmd/strata of the module holding this package into bin.
func buildStrata(bin string) error {
	wd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("getting the working directory: %w", err)
	}
	root := wd
	for {
		if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(root)
		if parent == root {
			return fmt.Errorf("no go.mod above %s", wd)
		}
		root = parent
	}
	// `go test` puts its own GOROOT/bin first on PATH, so this is the go that runs the tests.
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/strata")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building strata: %w\n%s", err, out)
	}
	return nil
}

// peer checks the preconditions of every test here: root, and the ostree binary.
func peer(t *testing.T) {
	t.Helper()
	testutil.RequireRoot(t)
	testutil.Ostree(t)
}

// result is what a finished command left behind.
type result struct {
	cmdline        string
	stdout, stderr string
	code           int
}

// output is the command's stdout and stderr together, for messages that must name something.
func (r result) output() string { return r.stdout + r.stderr }

func (r result) String() string {
	return fmt.Sprintf("%s: exit %d, stderr %q", r.cmdline, r.code, strings.TrimSpace(r.stderr))
}

// run runs name with args and reports how it ended; err is set only if it could not start.
func run(name string, args ...string) (result, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	res := result{cmdline: commandLine(name, args)}
	err := cmd.Run()
	res.stdout, res.stderr = stdout.String(), stderr.String()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		res.code = ee.ExitCode()
	case err != nil:
		return res, fmt.Errorf("running %s: %w", res.cmdline, err)
	}
	return res, nil
}

func commandLine(name string, args []string) string {
	parts := []string{filepath.Base(name)}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$") {
			a = fmt.Sprintf("%q", a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// runOK runs a command that must succeed and returns its stdout.
func runOK(name string, args ...string) (string, error) {
	res, err := run(name, args...)
	if err != nil {
		return "", err
	}
	if res.code != 0 {
		return res.stdout, errors.New(res.String())
	}
	return res.stdout, nil
}

func strataOK(args ...string) (string, error) { return runOK(strataBin, args...) }

func ostreeOK(args ...string) (string, error) { return runOK("ostree", args...) }

// mustStrata runs strata, fails the test unless it succeeds, and returns its stdout.
func mustStrata(t *testing.T, args ...string) string {
	t.Helper()
	out, err := strataOK(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// mustOstree runs ostree, fails the test unless it succeeds, and returns its stdout.
func mustOstree(t *testing.T, args ...string) string {
	t.Helper()
	out, err := ostreeOK(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// initRepo creates a repository of mode with strata or with ostree and turns off fsync in it:
// these tests compare bytes, not durability, and fsync dominates their run time otherwise. Both
// tools honour core.fsync.
func initRepo(tool, repo, mode string) error {
	var err error
	if tool == "strata" {
		_, err = strataOK("repo", "init", "--repo", repo, "--mode", mode)
	} else {
		_, err = ostreeOK("--repo="+repo, "init", "--mode="+mode)
	}
	if err != nil {
		return err
	}
	_, err = ostreeOK("--repo="+repo, "config", "set", "core.fsync", "false")
	return err
}

// mustInitRepo is initRepo failing the test on error.
func mustInitRepo(t *testing.T, tool, repo, mode string) {
	t.Helper()
	if err := initRepo(tool, repo, mode); err != nil {
		t.Fatal(err)
	}
}

// checksumOut returns the commit checksum a commit command printed: its whole stdout must be 64
// lowercase hex characters and a newline, as `ostree commit` prints and the README promises for
// `strata repo commit`.
func checksumOut(out string) (string, error) {
	sum, ok := strings.CutSuffix(out, "\n")
	if !ok || len(sum) != 64 || strings.Trim(sum, "0123456789abcdef") != "" {
		return "", fmt.Errorf("commit printed %q, want a 64-character hex checksum and a newline", out)
	}
	return sum, nil
}
