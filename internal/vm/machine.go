package vm

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// Reason says why a run ended.
type Reason string

const (
	ReasonMarker  Reason = "marker"  // an Until pattern showed up on the marker port
	ReasonFailure Reason = "failure" // a failure pattern showed up on the console
	ReasonTimeout Reason = "timeout" // Config.Timeout passed; QEMU was killed
	ReasonExited  Reason = "exited"  // QEMU exited (guest power-off) with no Until match
	ReasonKilled  Reason = "killed"  // Kill or the context of Start ended the run
)

// Result is what a run saw.
type Result struct {
	Reason     Reason        `json:"reason"`
	Matched    string        `json:"matched,omitempty"` // the marker-port line that matched Until
	Failure    string        `json:"failure,omitempty"` // the console line that matched a failure pattern
	Markers    []Marker      `json:"markers"`
	Milestones []Milestone   `json:"milestones"`
	Exited     bool          `json:"exited"`    // QEMU exited by itself (not killed)
	ExitCode   int           `json:"exit_code"` // QEMU's exit status when Exited
	Elapsed    time.Duration `json:"elapsed_ns"`
	// ConsoleTail is the end of the console log, for error messages.
	ConsoleTail string `json:"console_tail,omitempty"`
}

// OK reports whether the run succeeded: the Until pattern was seen (or, with none, QEMU exited
// by itself), QEMU exited, and no failure pattern showed up.
func (r Result) OK(wantMarker bool) bool {
	switch {
	case r.Failure != "" && r.Reason != ReasonMarker:
		return false
	case wantMarker:
		return r.Reason == ReasonMarker && r.Exited && r.ExitCode == 0
	default:
		return r.Reason == ReasonExited && r.ExitCode == 0
	}
}

// Machine is a running QEMU.
type Machine struct {
	cfg     Config
	cmd     *exec.Cmd
	start   time.Time
	tmpDir  string
	console string
	markers string
	consOut io.Writer

	killOnce sync.Once
	killed   chan struct{}
	done     chan struct{} // closed when the run is over and result is set
	result   Result

	mu      sync.Mutex
	sc      *scanner
	changed chan struct{} // closed and replaced whenever markers change or the run ends
	cursor  map[string]int

	ctl *control
}

// Run starts a machine and waits for its end.
func Run(ctx context.Context, cfg Config) (Result, error) {
	m, err := Start(ctx, cfg)
	if err != nil {
		return Result{}, err
	}
	return m.Wait(), nil
}

// Start boots a machine. Cancelling ctx kills it (ReasonKilled).
func Start(ctx context.Context, cfg Config) (m *Machine, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	accel, err := resolveAccel(cfg.Accel, os.Getenv(AccelEnv))
	if err != nil {
		return nil, err
	}
	if cfg.Failures == nil {
		cfg.Failures = DefaultFailures
	}
	if cfg.Milestones == nil {
		cfg.Milestones = DefaultMilestones
	}
	sc, err := newScanner(cfg.Until, cfg.Failures, cfg.Milestones)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
	}
	qemu := cfg.QEMU
	if qemu == "" {
		qemu = DefaultQEMU
	}
	if qemu, err = exec.LookPath(qemu); err != nil {
		return nil, fmt.Errorf("finding QEMU (Debian package qemu-system-x86): %w", errdefs.ErrNotFound)
	}
	// A short private directory: unix socket paths are limited to 108 bytes.
	tmp, err := os.MkdirTemp("", "strata-vm-")
	if err != nil {
		return nil, fmt.Errorf("creating the machine's directory: %w", err)
	}
	m = &Machine{cfg: cfg, tmpDir: tmp, sc: sc, killed: make(chan struct{}), done: make(chan struct{}),
		changed: make(chan struct{}), cursor: map[string]int{}}
	m.consOut = cfg.ConsoleOut
	defer func() {
		if err != nil {
			if m.ctl != nil {
				m.ctl.close()
			}
			os.RemoveAll(tmp)
		}
	}()
	f := files{console: cfg.ConsoleLog, markers: cfg.MarkerLog}
	if f.console == "" {
		f.console = filepath.Join(tmp, "console.log")
	}
	if f.markers == "" {
		f.markers = filepath.Join(tmp, "markers.log")
	}
	m.console, m.markers = f.console, f.markers
	for _, p := range []string{f.console, f.markers} {
		// Created empty up front, so the watcher never races QEMU's open.
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			return nil, fmt.Errorf("creating log %s: %w", p, err)
		}
	}
	if cfg.UEFI != nil {
		if f.vars, err = prepareVars(*cfg.UEFI, tmp); err != nil {
			return nil, err
		}
	}
	if cfg.Control {
		f.control = filepath.Join(tmp, "control.sock")
		if m.ctl, err = listenControl(f.control); err != nil {
			return nil, err
		}
	}
	m.cmd = exec.Command(qemu, cfg.args(accel, hostCores(), f)...)
	m.cmd.Stdout = &tailBuffer{max: 64 << 10}
	m.cmd.Stderr = m.cmd.Stdout
	// QEMU dies with its parent: a crashed test leaves no VM behind.
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	m.start = time.Now()
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", qemu, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- m.cmd.Wait() }()
	go m.supervise(ctx, exited)
	return m, nil
}

// prepareVars returns the writable variable store, created from the template when missing.
func prepareVars(u UEFI, tmp string) (string, error) {
	vars := u.Vars
	if vars == "" {
		vars = filepath.Join(tmp, "OVMF_VARS.fd")
	}
	if _, err := os.Stat(vars); err == nil {
		return vars, nil
	}
	tmpl := u.VarsTemplate
	if tmpl == "" {
		tmpl = DefaultOVMFVars
	}
	data, err := os.ReadFile(tmpl)
	if err != nil {
		return "", fmt.Errorf("reading the UEFI variable template (Debian package ovmf): %w", err)
	}
	if err := os.WriteFile(vars, data, 0o644); err != nil {
		return "", fmt.Errorf("creating the UEFI variable store %s: %w", vars, err)
	}
	return vars, nil
}

// Kill cuts the machine's power: SIGKILL to QEMU. The run ends with ReasonKilled unless it was
// already over.
func (m *Machine) Kill() { m.killOnce.Do(func() { close(m.killed) }) }

// Wait blocks until the run is over and returns its result; it may be called many times.
func (m *Machine) Wait() Result {
	<-m.done
	return m.result
}

// Done is closed when the run is over.
func (m *Machine) Done() <-chan struct{} { return m.done }

// ConsoleLog and MarkerLog are the paths of the serial logs (removed after the run unless the
// config named them).
func (m *Machine) ConsoleLog() string { return m.console }
func (m *Machine) MarkerLog() string  { return m.markers }

// Markers returns the markers seen so far.
func (m *Machine) Markers() []Marker {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Marker(nil), m.sc.Markers...)
}

// ErrStopped is returned by WaitMarker and Exec when the run ends first.
var ErrStopped = errors.New("machine stopped")

// WaitMarker waits for the next marker called name that no earlier WaitMarker call returned:
// successive calls return successive occurrences (one per boot, say).
func (m *Machine) WaitMarker(ctx context.Context, name string) (Marker, error) {
	m.mu.Lock()
	from := m.cursor[name]
	m.mu.Unlock()
	mk, i, err := m.waitFor(ctx, from, func(mk Marker) bool { return mk.Name == name })
	if err != nil {
		return Marker{}, fmt.Errorf("waiting for marker %q: %w", name, err)
	}
	m.mu.Lock()
	m.cursor[name] = max(m.cursor[name], i+1)
	m.mu.Unlock()
	return mk, nil
}

// waitFor waits for the first marker at index ≥ from that satisfies match.
func (m *Machine) waitFor(ctx context.Context, from int, match func(Marker) bool) (Marker, int, error) {
	for {
		m.mu.Lock()
		for i := from; i < len(m.sc.Markers); i++ {
			if match(m.sc.Markers[i]) {
				mk := m.sc.Markers[i]
				m.mu.Unlock()
				return mk, i, nil
			}
		}
		changed := m.changed
		m.mu.Unlock()
		select {
		case <-changed:
		case <-m.done:
			// The final scan happened before done closed; look once more.
			m.mu.Lock()
			for i := from; i < len(m.sc.Markers); i++ {
				if match(m.sc.Markers[i]) {
					mk := m.sc.Markers[i]
					m.mu.Unlock()
					return mk, i, nil
				}
			}
			m.mu.Unlock()
			r := m.result
			return Marker{}, 0, fmt.Errorf("%w (%s)%s", ErrStopped, r.Reason, tailNote(r))
		case <-ctx.Done():
			return Marker{}, 0, ctx.Err()
		}
	}
}

func tailNote(r Result) string {
	if r.ConsoleTail == "" {
		return ""
	}
	return "; console ends:\n" + r.ConsoleTail
}

// supervise polls the logs until QEMU is gone, then publishes the result.
func (m *Machine) supervise(ctx context.Context, exited <-chan error) {
	timeout := m.cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	exitTimeout := m.cfg.ExitTimeout
	if exitTimeout <= 0 {
		exitTimeout = DefaultExitTimeout
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(defaultPollInterval)
	defer tick.Stop()
	logs := newLogReaders(m.console, m.markers)
	defer logs.close()

	var reason Reason
	var waitErr error
	alive := true
	for alive && reason == "" {
		select {
		case waitErr = <-exited:
			alive = false
		case <-tick.C:
			m.scan(logs, false)
			m.mu.Lock()
			failed, matched, at := m.sc.Failure != "", m.sc.Matched != "", m.sc.MatchedAt
			m.mu.Unlock()
			switch {
			case failed:
				reason = ReasonFailure
			case matched && time.Since(m.start) > at+exitTimeout:
				reason = ReasonMarker // the guest did not power off in time
			}
		case <-deadline.C:
			reason = ReasonTimeout
		case <-m.killed:
			reason = ReasonKilled
		case <-ctx.Done():
			reason = ReasonKilled
		}
	}
	if alive {
		m.cmd.Process.Kill()
		waitErr = <-exited
	}
	elapsed := time.Since(m.start)
	m.scan(logs, true) // QEMU is gone: whatever it wrote is in the files (the exit race)
	if m.ctl != nil {
		m.ctl.close()
	}

	m.mu.Lock()
	r := Result{
		Matched: m.sc.Matched, Failure: m.sc.Failure, Elapsed: elapsed,
		Markers: append([]Marker(nil), m.sc.Markers...), Milestones: append([]Milestone(nil), m.sc.Milestones...),
		Exited: !alive,
	}
	m.mu.Unlock()
	if r.Exited {
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			r.ExitCode = ee.ExitCode()
		}
	}
	switch {
	case reason != "":
		r.Reason = reason
	case r.Matched != "":
		r.Reason = ReasonMarker
	case r.Failure != "":
		r.Reason = ReasonFailure
	default:
		r.Reason = ReasonExited
	}
	r.ConsoleTail = consoleTail(m.console, 40)
	if out := m.cmd.Stdout.(*tailBuffer).String(); out != "" && r.Exited && r.ExitCode != 0 {
		r.ConsoleTail += "\n[qemu] " + strings.TrimSpace(out)
	}
	m.result = r
	// The logs the caller named live elsewhere; the private directory goes.
	os.RemoveAll(m.tmpDir)
	close(m.done)
}

// scan reads what the logs gained and wakes marker waiters.
func (m *Machine) scan(logs *logReaders, final bool) {
	cons, marks := logs.read()
	if m.consOut != nil && len(cons) > 0 {
		m.consOut.Write(cons)
	}
	at := time.Since(m.start).Round(defaultPollInterval)
	m.mu.Lock()
	defer m.mu.Unlock()
	n := len(m.sc.Markers)
	m.sc.feedConsole(cons, at, final)
	m.sc.feedMarkers(marks, at, final)
	if len(m.sc.Markers) != n || final {
		close(m.changed)
		m.changed = make(chan struct{})
	}
}

// logReaders follow the two log files.
type logReaders struct{ console, markers *os.File }

func newLogReaders(console, markers string) *logReaders {
	l := &logReaders{}
	l.console, _ = os.Open(console)
	l.markers, _ = os.Open(markers)
	return l
}

func readNew(f *os.File) []byte {
	if f == nil {
		return nil
	}
	b, _ := io.ReadAll(f)
	return b
}

func (l *logReaders) read() (console, markers []byte) { return readNew(l.console), readNew(l.markers) }

func (l *logReaders) close() {
	for _, f := range []*os.File{l.console, l.markers} {
		if f != nil {
			f.Close()
		}
	}
}

// consoleTail returns the last n lines of the console log.
func consoleTail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	const maxBytes = 16 << 10
	if len(data) > maxBytes {
		data = data[len(data)-maxBytes:]
	}
	lines := strings.Split(strings.TrimRight(strings.ReplaceAll(string(data), "\r", ""), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// tailBuffer keeps the last max bytes written (QEMU's own messages).
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > t.max {
		t.b = t.b[len(t.b)-t.max:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return string(t.b)
}
