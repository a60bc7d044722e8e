package agent

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/schedule"
)

// Strategy decides when a staged update may be finalized (and the node rebooted).
type Strategy interface {
	// Name is the configured strategy's name.
	Name() string
	// ReportSteady tells the strategy the node is in steady state after a good boot (for the
	// fleet lock: give back any reboot slot this node holds).
	ReportSteady(ctx context.Context) error
	// CanFinalize reports whether the node may reboot now, and when not, why. It may take a
	// reboot slot: a node that gets one must then reboot.
	CanFinalize(ctx context.Context, now time.Time) (ok bool, why string, err error)
}

// Immediate finalizes as soon as an update is staged.
type Immediate struct{}

func (Immediate) Name() string                       { return StrategyImmediate }
func (Immediate) ReportSteady(context.Context) error { return nil }
func (Immediate) CanFinalize(context.Context, time.Time) (bool, string, error) {
	return true, "", nil
}

// Periodic finalizes only inside maintenance windows.
type Periodic struct{ Calendar schedule.Calendar }

func (Periodic) Name() string                       { return StrategyPeriodic }
func (Periodic) ReportSteady(context.Context) error { return nil }
func (p Periodic) CanFinalize(_ context.Context, now time.Time) (bool, string, error) {
	if p.Calendar.Contains(now) {
		return true, "", nil
	}
	next, _ := p.Calendar.Next(now)
	return false, fmt.Sprintf("outside the maintenance windows; the next opens at %s", next.UTC().Format(time.RFC3339)), nil
}

// FleetLock finalizes once the lock server grants a reboot slot.
type FleetLock struct{ Client *fleetlock.Client }

func (FleetLock) Name() string                             { return StrategyFleetLock }
func (f FleetLock) ReportSteady(ctx context.Context) error { return f.Client.SteadyState(ctx) }
func (f FleetLock) CanFinalize(ctx context.Context, _ time.Time) (bool, string, error) {
	err := f.Client.PreReboot(ctx)
	if err == nil {
		return true, "", nil
	}
	var fe *fleetlock.Error
	if errors.As(err, &fe) && errors.Is(err, errdefs.ErrConflict) {
		return false, "waiting for a reboot slot: " + fe.Value, nil
	}
	return false, "", err
}

// Both finalizes inside a maintenance window and with a reboot slot: the window is checked first,
// so that a node never holds a slot it cannot use.
type Both struct {
	Periodic Periodic
	Lock     FleetLock
}

func (Both) Name() string                             { return StrategyPeriodicAndLock }
func (b Both) ReportSteady(ctx context.Context) error { return b.Lock.ReportSteady(ctx) }
func (b Both) CanFinalize(ctx context.Context, now time.Time) (bool, string, error) {
	if ok, why, err := b.Periodic.CanFinalize(ctx, now); !ok || err != nil {
		return ok, why, err
	}
	return b.Lock.CanFinalize(ctx, now)
}
