//go:build root && peer

package provision_test

import (
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/testutil"
)

// benchConfig is the benchmark's config: 1,000 files in 50 directories, 20 enabled units and
// 10 users with SSH keys, Ignition spec 3.3.0 so that Debian's Ignition can apply it too.
func benchConfig() []byte {
	type m = map[string]any
	var files, units, users []any
	for i := range 1000 {
		files = append(files, m{"path": fmt.Sprintf("/etc/bench/d%02d/f%04d.conf", i%50, i), "mode": 0o640,
			"contents": m{"source": fmt.Sprintf("data:,setting%%20%d%%20%%3D%%20value%%0A", i)}})
	}
	for i := range 20 {
		units = append(units, m{"name": fmt.Sprintf("bench%02d.service", i), "enabled": true,
			"contents": fmt.Sprintf("[Service]\nExecStart=/bin/echo %d\n[Install]\nWantedBy=multi-user.target\n", i)})
	}
	for i := range 10 {
		users = append(users, m{"name": fmt.Sprintf("user%02d", i), "groups": []string{"users"},
			"sshAuthorizedKeys": []string{key1}})
	}
	raw, _ := json.Marshal(m{"ignition": m{"version": "3.3.0"}, "storage": m{"files": files},
		"systemd": m{"units": units}, "passwd": m{"users": users}})
	return raw
}

// BenchmarkApply applies benchConfig to a fresh copy of the test root, with strata and with
// Debian's Ignition (fetch-offline and files stages), in one run:
//
//	go test -tags 'root peer' -run '^$' -bench BenchmarkApply -benchtime 5x ./internal/provision/
func BenchmarkApply(b *testing.B) {
	testutil.RequireRoot(b)
	requireIgnition(b)
	config := benchConfig()
	// Besides wall time, each reports the CPU time (user+system, this process and its
	// children: Ignition, useradd) per apply, which a loaded machine does not inflate.
	b.Run("strata", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			root := newRoot(b)
			c0 := cpuTime()
			b.StartTimer()
			if _, err := applyStrata(b, config, root); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu += cpuTime() - c0
			b.StartTimer()
		}
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	})
	b.Run("ignition", func(b *testing.B) {
		var cpu time.Duration
		for b.Loop() {
			b.StopTimer()
			root := newRoot(b)
			c0 := cpuTime()
			b.StartTimer()
			if err := runIgnition(b, config, root); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			cpu += cpuTime() - c0
			b.StartTimer()
		}
		b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
	})
}

// cpuTime is the user and system time of this process and its waited-for children.
func cpuTime() time.Duration {
	var total time.Duration
	for _, who := range []int{syscall.RUSAGE_SELF, syscall.RUSAGE_CHILDREN} {
		var ru syscall.Rusage
		syscall.Getrusage(who, &ru)
		total += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return total
}
