//go:build root

package cli

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/strata-os/strata/internal/provconfig"
	"github.com/strata-os/strata/internal/testutil"
)

// nobodyUID is the unprivileged user the tests below act as (Debian's
// nobody:nogroup).
const nobodyUID = 65534

// nobodyHelper returns a directory that nobody can reach and a copy of
// the test binary in it (the go build cache, where the binary lives, is
// root's own).
func nobodyHelper(t *testing.T) (top, helper string) {
	t.Helper()
	testutil.RequireRoot(t)
	top = t.TempDir()
	for p := top; p != os.TempDir() && p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	helper = filepath.Join(top, "strata.test")
	src, err := os.Open(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(helper, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
	return top, helper
}

// asNobody returns a command that runs name with args as nobody.
func asNobody(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyUID}}
	cmd.Env = append(os.Environ(), "HOME=/nonexistent")
	return cmd
}

// runNobody runs the strata command line as nobody (in a helper process)
// and returns its exit code and output.
func runNobody(t *testing.T, helper string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := asNobody(helper, "-test.run=^TestNobodyHelperProcess$")
	cmd.Env = append(cmd.Env, "STRATA_NOBODY_HELPER_ARGS="+strings.Join(args, "\x1f"))
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errb.String()
	}
	if err != nil {
		t.Fatalf("running strata %s as nobody: %v", strings.Join(args, " "), err)
	}
	return 0, out.String(), errb.String()
}

// TestNobodyHelperProcess is the body of the helper processes above: the
// strata command line (STRATA_NOBODY_HELPER_ARGS, fields split by 0x1f)
// or a static file server (STRATA_NOBODY_HELPER_SERVE). It does nothing
// in a normal test run.
func TestNobodyHelperProcess(t *testing.T) {
	if args, ok := os.LookupEnv("STRATA_NOBODY_HELPER_ARGS"); ok {
		os.Exit(Main(strings.Split(args, "\x1f"), os.Stdin, os.Stdout, os.Stderr))
	}
	dir, ok := os.LookupEnv("STRATA_NOBODY_HELPER_SERVE")
	if !ok {
		return
	}
	if os.Geteuid() != nobodyUID {
		os.Exit(3)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(4)
	}
	os.Stdout.WriteString(ln.Addr().String() + "\n")
	http.Serve(ln, http.FileServer(http.Dir(dir)))
	os.Exit(5)
}

// nobodySysroot makes a sysroot under top with one deployment of a local
// commit on testos/stable, everything written by root as strata writes
// it, and returns the sysroot and the commit.
func nobodySysroot(t *testing.T, top string) (sys, commit string) {
	t.Helper()
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	sys = filepath.Join(top, "sys")
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	commit = strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", filepath.Join(sys, "ostree/repo"),
		"--branch", "testos/stable", "--tree", nodeTree(t, "1"), "--metadata", "version=1", "--timestamp", "1700000001"))
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "testos/stable")
	return sys, commit
}

// TestReadOnlyCommandsAsNobody runs the read-only commands as an
// unprivileged user on a repository and a sysroot that root wrote: they
// work as ostree log and rpm-ostree status do, since reading takes no
// write lock; a write fails naming the repository and what it needs.
func TestReadOnlyCommandsAsNobody(t *testing.T) {
	top, helper := nobodyHelper(t)
	src := filepath.Join(top, "src")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "bare-user")
	var commits []string
	for _, v := range []string{"1", "2"} {
		out := publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "os/stable", "--tree", nodeTree(t, v),
			"--metadata", "version="+v, "--timestamp", "170000000"+v)
		commits = append(commits, strings.TrimSpace(out))
	}
	for _, args := range [][]string{
		{"repo", "log", "--repo", src, "os/stable"},
		{"repo", "show", "--repo", src, "os/stable"},
		{"repo", "refs", "--repo", src},
		{"repo", "ls", "--repo", src, "-R", "os/stable"},
		{"repo", "cat", "--repo", src, "os/stable", "/usr/bin/tool"},
		{"repo", "diff", "--repo", src, commits[0], commits[1]},
		{"repo", "fsck", "--repo", src},
	} {
		code, out, errs := runNobody(t, helper, args...)
		if code != exitOK {
			t.Errorf("strata %s as nobody = exit %d (%s), want 0", strings.Join(args, " "), code, errs)
			continue
		}
		if args[1] == "log" && !strings.Contains(out, commits[1]) {
			t.Errorf("strata repo log as nobody printed %q, want commit %s", out, commits[1])
		}
		if args[1] == "cat" && out != "tool 2\n" {
			t.Errorf("strata repo cat as nobody printed %q, want %q", out, "tool 2\n")
		}
	}
	// A repository nobody ever wrote has no .lock, and nobody may not create it.
	empty := filepath.Join(top, "empty")
	publishMustRun(t, "repo", "init", "--repo", empty, "--mode", "archive")
	if code, out, errs := runNobody(t, helper, "repo", "fsck", "--repo", empty); code != exitOK {
		t.Errorf("strata repo fsck of a repository without .lock as nobody = exit %d (%s%s), want 0", code, out, errs)
	}

	code, _, errs := runNobody(t, helper, "repo", "commit", "--repo", src, "--branch", "os/stable", "--tree", nodeTree(t, "3"))
	if code != exitFailure || !strings.Contains(errs, filepath.Join(src, ".lock")) || !strings.Contains(errs, "needs write access") {
		t.Errorf("repo commit as nobody = exit %d (%q), want %d naming %s/.lock and what writing needs", code, errs, exitFailure, src)
	}

	sys, commit := nobodySysroot(t, top)
	// A provisioned node's record is root's only (mode 0700 directory): status leaves it out.
	if err := os.MkdirAll(filepath.Join(sys, provconfig.FirstBootDir), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sys, provconfig.FirstBootRecord), []byte(`{"date":"2026-12-07T04:00:00Z"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runNobody(t, helper, "status", "--sysroot", sys)
	if code != exitOK || !strings.Contains(out, commit) || strings.Contains(out, "Provision") {
		t.Errorf("strata status as nobody = exit %d (%s%s), want 0 listing %s, without the provisioning record", code, out, errs, commit)
	}
}
