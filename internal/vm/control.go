package vm

import (
	"context"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"

	"github.com/strata-os/strata/internal/errdefs"
)

// The control port: the host listens on a unix socket, QEMU connects to it at startup and
// backs the guest's ttyS2 with it. The wire is one command per line, "<id> <command>\n"; the
// guest script (vmtest/guest/strata-vm-control) runs each command with sh -c, copies its output
// to the marker port and then writes "STRATA-MARK done <id> <exit status>". It announces
// itself with "STRATA-MARK control-ready" once it holds the port in raw mode: the guest's
// UART driver clears its FIFO when the port is opened, so bytes sent before that are lost,
// and callers wait for that marker (once per boot) before Send or Exec.

// ControlReady is the marker the guest control script writes when it is ready for commands.
const ControlReady = "control-ready"

// control is the host end of the control port.
type control struct {
	ln       net.Listener
	accepted chan struct{}
	conn     net.Conn
	err      error

	mu     sync.Mutex
	nextID int
}

func listenControl(path string) (*control, error) {
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on the control socket %s: %w", path, err)
	}
	c := &control{ln: ln, accepted: make(chan struct{})}
	go func() {
		c.conn, c.err = ln.Accept()
		close(c.accepted)
		ln.Close()
		if c.err == nil {
			// Drain what the guest writes back (its tty echo before it switches to raw mode).
			io.Copy(io.Discard, c.conn)
		}
	}()
	return c, nil
}

func (c *control) close() {
	c.ln.Close()
	<-c.accepted
	if c.conn != nil {
		c.conn.Close()
	}
}

// Send writes one command to the guest's control port and returns its id, without waiting for
// it to run (a command such as "reboot" never reports back). Call it after the guest's
// ControlReady marker of the current boot.
func (m *Machine) Send(ctx context.Context, command string) (int, error) {
	if m.ctl == nil {
		return 0, fmt.Errorf("sending %q: machine has no control port (Config.Control): %w", command, errdefs.ErrFailedPrecondition)
	}
	if strings.ContainsAny(command, "\r\n") || strings.TrimSpace(command) == "" {
		return 0, fmt.Errorf("sending %q: a command is one non-empty line: %w", command, errdefs.ErrInvalid)
	}
	if m.stopped() {
		return 0, fmt.Errorf("sending %q: %w", command, ErrStopped)
	}
	select {
	case <-m.ctl.accepted:
	case <-m.done:
		return 0, fmt.Errorf("sending %q: %w", command, ErrStopped)
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	if m.ctl.err != nil {
		return 0, fmt.Errorf("sending %q: QEMU did not connect to the control port: %w", command, m.ctl.err)
	}
	m.ctl.mu.Lock()
	defer m.ctl.mu.Unlock()
	m.ctl.nextID++
	id := m.ctl.nextID
	if _, err := io.WriteString(m.ctl.conn, strconv.Itoa(id)+" "+command+"\n"); err != nil {
		if m.stopped() {
			err = ErrStopped
		}
		return 0, fmt.Errorf("sending %q: %w", command, err)
	}
	return id, nil
}

// Exec runs a command in the guest through the control port and returns its exit status; its
// output is in the marker log.
func (m *Machine) Exec(ctx context.Context, command string) (int, error) {
	m.mu.Lock()
	from := len(m.sc.Markers)
	m.mu.Unlock()
	id, err := m.Send(ctx, command)
	if err != nil {
		return 0, err
	}
	prefix := strconv.Itoa(id) + " "
	mk, _, err := m.waitFor(ctx, from, func(mk Marker) bool {
		return mk.Name == "done" && strings.HasPrefix(mk.Value, prefix)
	})
	if err != nil {
		return 0, fmt.Errorf("running %q in the guest: %w", command, err)
	}
	status, err := strconv.Atoi(strings.TrimPrefix(mk.Value, prefix))
	if err != nil {
		return 0, fmt.Errorf("running %q in the guest: bad done marker %q: %w", command, mk.Value, errdefs.ErrInvalid)
	}
	return status, nil
}

// stopped reports whether the run is over.
func (m *Machine) stopped() bool {
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}
