//go:build root && peer

package cli

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/testutil"
)

// TestLayerApplyLive: `strata install --apply-live` on a node whose
// running system is the deployment's /usr bound read-only on ROOT/usr (as
// ostree boots it), in a mount namespace of the test's own: the layered
// package's program runs from ROOT/usr at once and dpkg lists it there; a
// second apply-live replaces the overlay (one on ROOT/usr, with both
// packages); the booted deployment's tree on disk is untouched
// throughout, and the packages are in the new deployment for the reboot.
func TestLayerApplyLive(t *testing.T) {
	n := newLayerNode(t)
	n.makeBase(t, "1", marker("1"))
	publishMustRun(t, "deploy", "--sysroot", n.sys, "--os", "testos", "testos/stable")
	running := n.deployment(t)
	n.useTestSources(t, running)
	localDeb := buildDeb(t, t.TempDir(), needsOld)
	// The kernel's command line names the running deployment, as the boot
	// loader's ostree= does.
	cmdline := filepath.Join(t.TempDir(), "cmdline")
	writeTestFile(t, cmdline, "root=LABEL=root ostree=/"+strings.TrimPrefix(running.Path, n.sys+"/")+"\n")
	root := filepath.Join(t.TempDir(), "root")
	usr := filepath.Join(root, "usr")

	// In-process commands run on the namespace's thread, so their mounts land there too.
	testutil.InMountNamespace(t, func() {
		if err := os.MkdirAll(usr, 0o755); err != nil {
			t.Error(err)
			return
		}
		if err := unix.Mount(filepath.Join(running.Path, "usr"), usr, "", unix.MS_BIND, ""); err != nil {
			t.Errorf("binding the running /usr: %v", err)
			return
		}
		if err := unix.Mount("", usr, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
			t.Errorf("making the running /usr read-only: %v", err)
			return
		}
		hello := filepath.Join(usr, "bin/hello-layer")
		if _, err := os.Stat(hello); err == nil {
			t.Errorf("%s exists before install", hello)
		}

		code, out, errs := publishRun(t, "install", "--sysroot", n.sys, "--apply-live", "--live-root", root, "--proc-cmdline", cmdline, "hello-layer")
		if code != exitOK || !strings.Contains(out, "Applied live") {
			t.Errorf("install --apply-live hello-layer = exit %d (%s%s), want it applied live", code, out, errs)
			return
		}
		if got, err := exec.Command("/bin/sh", hello).Output(); err != nil || string(got) != "hello from a layered package\n" {
			t.Errorf("running %s after apply-live = %q, %v; want its greeting", hello, got, err)
		}
		for _, p := range []string{"hello-layer", "hello-lib"} {
			if got := dpkgList(t, root, p); !strings.HasPrefix(got, "ii") {
				t.Errorf("dpkg-query on the running /usr: %s = %q, want installed", p, got)
			}
		}
		if b, err := os.ReadFile(filepath.Join(usr, "lib/os-release")); err != nil || !strings.Contains(string(b), "LAYERED=hello-layer") {
			t.Errorf("the running /usr/lib/os-release = %q (%v), want the postinst's change applied", b, err)
		}
		if err := os.WriteFile(filepath.Join(usr, "bin/written"), nil, 0o644); err == nil {
			t.Errorf("the running /usr is writable after apply-live; want the overlay read-only")
		}

		publishMustRun(t, "install", "--sysroot", n.sys, "--apply-live", "--live-root", root, "--proc-cmdline", cmdline, localDeb)
		for _, p := range []string{"hello-layer", "needs-old"} {
			if got := dpkgList(t, root, p); !strings.HasPrefix(got, "ii") {
				t.Errorf("after the second apply-live, %s = %q, want installed", p, got)
			}
		}
		var st statusJSON
		if err := json.Unmarshal([]byte(publishMustRun(t, "status", "--sysroot", n.sys, "--json", "--live-root", root, "--proc-cmdline", cmdline)), &st); err != nil {
			t.Error(err)
		}
		booted := false
		for _, dj := range st.Deployments {
			booted = booted || dj.Booted
			if want := fmt.Sprintf("%s.%d", st.Deployments[0].Checksum, st.Deployments[0].Serial); dj.Booted && dj.LiveApplied != want {
				t.Errorf("status of the booted deployment: live-applied %q, want %s", dj.LiveApplied, want)
			}
		}
		if !booted {
			t.Errorf("status --proc-cmdline shows no booted deployment: %+v", st.Deployments)
		}
		mi, _ := os.ReadFile("/proc/thread-self/mountinfo")
		if c := strings.Count(string(mi), " "+usr+" "); c != 2 {
			t.Errorf("%d mounts on %s after two apply-live, want 2 (the bind and one overlay):\n%s", c, usr, mi)
		}

		// With an update pending, a layer on the new base is not applied
		// live: the new deployment is made, the running /usr stays.
		n.makeBase(t, "2", marker("1.5"))
		for _, dj := range nodeStatus(t, n.sys).Deployments {
			if dj.Path == running.Path {
				// upgrade has no --proc-cmdline: pinned, the running
				// deployment survives its cleanup as the booted one would.
				publishMustRun(t, "pin", "--sysroot", n.sys, strconv.Itoa(dj.Index))
			}
		}
		publishMustRun(t, "upgrade", "--sysroot", n.sys)
		code, out, errs = publishRun(t, "install", "--sysroot", n.sys, "--apply-live", "--live-root", root, "--proc-cmdline", cmdline, "hello-lib")
		if code == exitOK || !strings.Contains(errs, "cannot apply it live") || !strings.Contains(errs, "is not the running one's") {
			t.Errorf("install --apply-live with an update pending = exit %d (%s%s), want a refusal naming the other base", code, out, errs)
		}
		if got := dpkgList(t, root, "base-marker"); got != "ii 1" {
			t.Errorf("the running /usr's base-marker = %q after the refused apply-live, want the running base's 1", got)
		}
	})

	// What the namespace showed never reached the disk of the running
	// deployment; the new deployment has both packages.
	if _, err := os.Stat(filepath.Join(running.Path, "usr/bin/hello-layer")); err == nil {
		t.Errorf("the running deployment's tree has usr/bin/hello-layer: apply-live wrote into it")
	}
	checkDeployedTree(t, n.r, mustChecksum(t, running.Checksum), running.Path)
	d0 := n.deployment(t)
	for _, p := range []string{"hello-layer", "needs-old"} {
		if got := dpkgList(t, d0.Path, p); !strings.HasPrefix(got, "ii") {
			t.Errorf("the new deployment: %s = %q, want installed", p, got)
		}
	}
	noLeftovers(t, n.repoPath)
}
