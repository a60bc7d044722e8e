//go:build root && peer

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/testutil"
)

// TestSysextRefresh runs Debian's systemd-sysext after `sysext add` and
// `sysext remove`, on a running system made of the deployment's /usr and
// the stateroot's /var bound under ROOT, in a mount namespace of the
// test's own (systemd-sysext --root=ROOT; /run a tmpfs there, ROOT/usr a
// shared mount so that the merge systemd-sysext makes in its own
// namespace shows in this one). After add, the extension's program runs
// from ROOT/usr; after remove it is gone; with --no-refresh nothing is
// merged. The deployment's tree on disk never has it.
func TestSysextRefresh(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	testutil.RequireTool(t, "systemd-sysext", "systemd")
	sys := filepath.Join(t.TempDir(), "sys")
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	publishMustRun(t, "repo", "commit", "--repo", filepath.Join(sys, "ostree/repo"), "--branch", "testos/stable", "--tree", sysextOSTree(t, "1"))
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "testos/stable")
	d := nodeStatus(t, sys).Deployments[0]
	img := sysextBuild(t, "1")
	root := filepath.Join(t.TempDir(), "root")
	hello := filepath.Join(root, "usr/bin/hello")

	done := make(chan struct{})
	go func() {
		defer close(done)
		// Never unlocked: the namespace and its mounts end with the
		// thread. The in-process commands, and systemd-sysext they start,
		// run in it.
		runtime.LockOSThread()
		for _, m := range []struct {
			src, dst, fstype string
			flags            uintptr
		}{
			{"", "/", "", unix.MS_REC | unix.MS_PRIVATE},
			{"tmpfs", "/run", "tmpfs", 0},
			{filepath.Join(d.Path, "usr"), filepath.Join(root, "usr"), "", unix.MS_BIND},
			{"", filepath.Join(root, "usr"), "", unix.MS_SHARED},
			{filepath.Join(sys, "ostree/deploy/testos/var"), filepath.Join(root, "var"), "", unix.MS_BIND},
		} {
			if m.src == "" && m.dst == "/" {
				if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
					t.Errorf("unshare: %v", err)
					return
				}
			}
			if err := os.MkdirAll(m.dst, 0o755); err != nil {
				t.Error(err)
				return
			}
			if err := unix.Mount(m.src, m.dst, m.fstype, m.flags, ""); err != nil {
				t.Errorf("mount %s on %s: %v", m.src, m.dst, err)
				return
			}
		}
		run := func(args ...string) string {
			code, out, errs := publishRun(t, args...)
			if code != exitOK {
				t.Errorf("strata %v = exit %d (%s%s)", args, code, out, errs)
			}
			return out
		}
		out := run("sysext", "add", "--sysroot", sys, "--sysext-root", root, "--no-refresh", img)
		if _, err := os.Stat(hello); err == nil || !strings.Contains(out, "Not refreshed") {
			t.Errorf("sysext add --no-refresh said %q and %s exists (%v); want it not merged", out, hello, err)
		}
		run("sysext", "remove", "--sysroot", sys, "--sysext-root", root, "--no-refresh", "hello")

		out = run("sysext", "add", "--sysroot", sys, "--sysext-root", root, img)
		if got, err := exec.Command("/bin/sh", hello).Output(); err != nil || string(got) != "hello 1\n" || !strings.Contains(out, "Refreshed") {
			t.Errorf("after sysext add (%q), %s printed %q (%v); want the extension merged at once", out, hello, got, err)
		}
		run("sysext", "remove", "--sysroot", sys, "--sysext-root", root, "hello")
		if _, err := os.Stat(hello); err == nil {
			t.Errorf("%s is still there after sysext remove; want it unmerged at once", hello)
		}
	}()
	<-done
	if _, err := os.Stat(filepath.Join(d.Path, "usr/bin/hello")); err == nil {
		t.Errorf("the deployment's tree has usr/bin/hello: the merge wrote into it")
	}
}
