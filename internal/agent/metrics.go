package agent

import (
	"fmt"
	"io"
	"sync/atomic"
)

// metrics are the agent's counters, printed in Prometheus text format by WriteMetrics.
type metrics struct {
	checks, checkErrors, ignored                     atomic.Int64
	deployAttempts, deployFailures, finalizeAttempts atomic.Int64
	blocked, postponed, stateChanges, errors         atomic.Int64
}

// WriteMetrics prints the agent's metrics in Prometheus text format.
func (a *Agent) WriteMetrics(w io.Writer) {
	st := a.Status()
	m := &a.metrics
	counter := func(name, help string, v int64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", name, help, name, name, v)
	}
	gauge := func(name, help string, v float64) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n%s %g\n", name, help, name, name, v)
	}
	counter("strata_agent_update_checks_total", "Release graph fetches.", m.checks.Load())
	counter("strata_agent_update_check_errors_total", "Release graph fetches that failed.", m.checkErrors.Load())
	counter("strata_agent_ignored_targets_total", "Releases the graph offered that this node had deployed or rolled back from.", m.ignored.Load())
	counter("strata_agent_deploy_attempts_total", "Attempts to stage a release.", m.deployAttempts.Load())
	counter("strata_agent_deploy_failures_total", "Attempts to stage a release that failed.", m.deployFailures.Load())
	counter("strata_agent_finalize_attempts_total", "Reboots into a staged release started.", m.finalizeAttempts.Load())
	counter("strata_agent_finalization_blocked_total", "Times the strategy did not allow a reboot yet.", m.blocked.Load())
	counter("strata_agent_postponed_finalizations_total", "Reboots postponed because users were logged in.", m.postponed.Load())
	counter("strata_agent_state_changes_total", "Transitions of the state machine.", m.stateChanges.Load())
	counter("strata_agent_errors_total", "Errors of the state machine's steps.", m.errors.Load())
	deadend := 0.0
	if st.Deadend != "" {
		deadend = 1
	}
	gauge("strata_agent_booted_release_is_deadend", "Whether the booted release is a dead end.", deadend)
	gauge("strata_agent_download_bytes", "Bytes the current update downloads.", float64(st.DownloadBytes))
	gauge("strata_agent_downloaded_bytes", "Bytes of the current update downloaded so far.", float64(st.DownloadedByte))
	fmt.Fprintf(w, "# HELP strata_agent_updates_blocked Whether something on the node keeps updates from being staged, by what.\n# TYPE strata_agent_updates_blocked gauge\n")
	if st.BlockedBy != "" {
		fmt.Fprintf(w, "strata_agent_updates_blocked{by=%q} 1\n", st.BlockedBy)
	} else {
		fmt.Fprintf(w, "strata_agent_updates_blocked 0\n")
	}
	enabled := 0.0
	if a.opts.Config.Enabled() {
		enabled = 1
	}
	gauge("strata_agent_updates_enabled", "Whether automatic updates are on.", enabled)
	fmt.Fprintf(w, "# HELP strata_agent_state The state of the update agent (1 for the current one).\n# TYPE strata_agent_state gauge\n")
	for _, s := range []State{StateStart, StateInitialized, StateReportedSteady, StateNoNewUpdate, StateUpdateAvailable, StateUpdateStaged, StateUpdateFinalized, StateDisabled} {
		v := 0
		if s == st.State {
			v = 1
		}
		fmt.Fprintf(w, "strata_agent_state{state=%q} %d\n", s, v)
	}
}
