//go:build root && peer && e2e

package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// cutFractions are the instants of the power cuts, as fractions of the measured duration of a
// `strata deploy` in the guest.
var cutFractions = []float64{0.1, 0.3, 0.5, 0.7, 0.9}

// powerCut cuts the power (SIGKILL to QEMU) in the middle of a `strata deploy` of v2 in the
// guest at several instants, boots again each time with the same disk and UEFI variables, and
// checks that the machine boots either the old default deployment or the new one, complete:
// the boot is judged good, strata status agrees, and the sysroot repository passes fsck.
func (e *env) powerCut(t *testing.T) {
	commit := e.commits["2"]
	deploy := "strata deploy " + commit

	// Measure the deploy once, uninterrupted: it makes a new default, which the first cut's
	// "old" is then.
	start := time.Now()
	e.mustExec(t, deploy)
	took := time.Since(start)
	e.measure(t, "strata deploy of v2 in the guest (uninterrupted, seen from the host): %s", secs(took))

	var outcomes []string
	for i, f := range cutFractions {
		t.Run(fmt.Sprintf("cut%d", i+1), func(t *testing.T) {
			old := defaultDeployment(t, e.status(t))
			delay := time.Duration(f * float64(took))
			ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
			defer cancel()
			if _, err := e.m.Send(ctx, deploy); err != nil {
				t.Fatal(err)
			}
			// The instant of the cut is the point of the test, not a wait for a condition.
			timer := time.NewTimer(delay)
			<-timer.C
			e.m.Kill()
			logRun(t, e.m.Wait())
			e.m = nil

			e.boot(t, true)
			b := e.waitBoot(t, ctx)
			booted := bootedDeployment(t, e.status(t))
			outcome := "new"
			switch {
			case b.Deployment == old:
				outcome = "old"
			case b.Version != "2" || !strings.HasPrefix(b.Deployment, commit+"."):
				t.Fatalf("cut at %s: booted %s (version %s), want the old default %s or a new deployment of %s",
					secs(delay), b.Deployment, b.Version, old, commit)
			}
			if b.BootComplete != "success" || booted.Name() != b.Deployment {
				t.Fatalf("cut at %s: boot of %s judged %q, status shows %+v as booted; want success and the same deployment",
					secs(delay), b.Deployment, b.BootComplete, booted)
			}
			fsckStart := time.Now()
			if status, out := e.exec(t, "strata repo fsck --repo /sysroot/ostree/repo"); status != 0 {
				t.Fatalf("cut at %s: strata repo fsck in the guest: exit status %d\n%s", secs(delay), status, tail(out, 30))
			}
			outcomes = append(outcomes, outcome)
			e.measure(t, "power cut %d at %s of the deploy: booted the %s deployment %s (boot %s, fsck %s)",
				i+1, secs(delay), outcome, b.Deployment, secs(b.At), secs(time.Since(fsckStart)))
		})
		if t.Failed() {
			return
		}
	}
	e.measure(t, "power cuts: %v", outcomes)
}

// defaultDeployment is the deployment the next boot starts: the first one that is not staged.
func defaultDeployment(t *testing.T, st []deployment) string {
	t.Helper()
	for _, d := range st {
		if !d.Staged {
			return d.Name()
		}
	}
	t.Fatalf("status %+v has no default deployment", st)
	return ""
}
