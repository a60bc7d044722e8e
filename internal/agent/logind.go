package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/godbus/dbus/v5"
	"github.com/strata-os/strata/internal/errdefs"
)

// Logind counts interactive sessions through systemd-logind on the system bus: sessions of
// class "user" that have a terminal or come from a remote host (SSH), as Zincati counts them
// before it reboots a node. Each call is bounded by a 5 s timeout.
type Logind struct{}

// Active returns the number of interactive sessions.
func (Logind) Active(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	conn, err := dbus.ConnectSystemBus(dbus.WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("connecting to the system bus: %v: %w", err, errdefs.ErrUnavailable)
	}
	defer conn.Close()
	mgr := conn.Object("org.freedesktop.login1", "/org/freedesktop/login1")
	var sessions []struct {
		ID   string
		UID  uint32
		User string
		Seat string
		Path dbus.ObjectPath
	}
	if err := mgr.CallWithContext(ctx, "org.freedesktop.login1.Manager.ListSessions", 0).Store(&sessions); err != nil {
		return 0, fmt.Errorf("listing logind sessions: %v: %w", err, errdefs.ErrUnavailable)
	}
	n := 0
	for _, s := range sessions {
		obj := conn.Object("org.freedesktop.login1", s.Path)
		class, err1 := obj.GetProperty("org.freedesktop.login1.Session.Class")
		tty, err2 := obj.GetProperty("org.freedesktop.login1.Session.TTY")
		remote, err3 := obj.GetProperty("org.freedesktop.login1.Session.Remote")
		if err1 != nil || err2 != nil || err3 != nil {
			continue // the session ended meanwhile
		}
		if c, _ := class.Value().(string); c != "user" {
			continue
		}
		t, _ := tty.Value().(string)
		r, _ := remote.Value().(bool)
		if t != "" || r {
			n++
		}
	}
	return n, nil
}
