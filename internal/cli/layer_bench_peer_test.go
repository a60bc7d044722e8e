//go:build root && peer

package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// cpuTime is the user and system time of this process and of its waited
// children (apt, dpkg and the maintainer scripts) so far.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var total time.Duration
	for _, who := range []int{unix.RUSAGE_SELF, unix.RUSAGE_CHILDREN} {
		var ru unix.Rusage
		if err := unix.Getrusage(who, &ru); err != nil {
			t.Fatal(err)
		}
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}

// TestLayeredUpgradeVsPlain is the benchmark of a layered upgrade: two
// nodes on the same composed base, one with a package layered
// (hello-layer and its dependency from the archive), one without, are
// upgraded to a new base in turns, three rounds, in one run; it logs the
// wall and CPU times of each and the ratio of the medians (the goal:
// the layered upgrade costs under twice the plain one). Each upgrade is
// checked: the new base is deployed, the layered package is still there.
func TestLayeredUpgradeVsPlain(t *testing.T) {
	plain, layered := newLayerNode(t), newLayerNode(t)
	for _, n := range []*layerNode{plain, layered} {
		n.makeBase(t, "1", marker("1"))
		publishMustRun(t, "deploy", "--sysroot", n.sys, "--os", "testos", "testos/stable")
		n.useTestSources(t, n.deployment(t))
	}
	publishMustRun(t, "install", "--sysroot", layered.sys, "hello-layer")

	const rounds = 3
	var wall, cpu [2][]time.Duration
	for i := range rounds {
		v := strconv.Itoa(i + 2)
		for k, n := range []*layerNode{plain, layered} {
			base := n.makeBase(t, v, marker(v))
			start, c0 := time.Now(), cpuTime(t)
			publishMustRun(t, "upgrade", "--sysroot", n.sys)
			wall[k] = append(wall[k], time.Since(start))
			cpu[k] = append(cpu[k], cpuTime(t)-c0)
			d0 := n.deployment(t)
			if d0.BaseChecksum != base.String() && d0.Checksum != base.String() {
				t.Fatalf("after upgrade %d: %+v, want base %s", i, d0, base)
			}
			if _, err := os.Stat(filepath.Join(d0.Path, "usr/bin/hello-layer")); (err == nil) != (n == layered) {
				t.Errorf("after upgrade %d of the %s node, usr/bin/hello-layer: %v", i, map[bool]string{true: "layered", false: "plain"}[n == layered], err)
			}
			noLeftovers(t, n.repoPath)
		}
	}
	median := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		slices.Sort(s)
		return s[len(s)/2]
	}
	var load [3]float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		_, _ = fmt.Sscan(string(b), &load[0], &load[1], &load[2])
	}
	t.Logf("plain upgrade: wall %v, CPU %v", wall[0], cpu[0])
	t.Logf("layered upgrade (hello-layer + hello-lib): wall %v, CPU %v", wall[1], cpu[1])
	t.Logf("medians: plain %.2fs wall %.2fs CPU; layered %.2fs wall %.2fs CPU; ratio %.2f wall, %.2f CPU (load average %.1f)",
		median(wall[0]).Seconds(), median(cpu[0]).Seconds(), median(wall[1]).Seconds(), median(cpu[1]).Seconds(),
		median(wall[1]).Seconds()/median(wall[0]).Seconds(), median(cpu[1]).Seconds()/median(cpu[0]).Seconds(), load[0])
}
