//go:build peer

package agent

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// promtool (Debian's prometheus package) accepts the agent's metrics text, with and without an
// update under way.
func TestMetricsPromtool(t *testing.T) {
	promtool := testutil.RequireTool(t, "promtool", "prometheus")
	h := newHarness(t, linear(3), 1)
	for _, steps := range []int{0, 1} {
		h.run(steps)
		var b bytes.Buffer
		h.a.WriteMetrics(&b)
		text := b.String()
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("promtool check metrics: %v\n%s\n--- metrics:\n%s", err, out, text)
		}
		if !strings.Contains(text, "strata_agent_state{state=") {
			t.Errorf("no state metric in:\n%s", text)
		}
	}
}
