package lockserver

import (
	"context"
	"time"

	"github.com/strata-os/strata/internal/fleetlock"
)

// Store keeps each group's semaphore. Update is the only way to change one: it reads the group's
// semaphore (or init when there is none), runs fn on it and writes the result only if fn changed
// it, atomically with respect to every other Update on any server sharing the store.
type Store interface {
	Update(ctx context.Context, group string, init fleetlock.Semaphore, fn func(*fleetlock.Semaphore) (bool, error)) (fleetlock.Semaphore, error)
	// Get returns the group's semaphore; ok is false when the group has none yet.
	Get(ctx context.Context, group string) (s fleetlock.Semaphore, ok bool, err error)
	// Groups lists the groups that have a semaphore.
	Groups(ctx context.Context) ([]string, error)
	// Audit appends a record; Records returns the newest ones, oldest first.
	Audit(ctx context.Context, r Record) error
	Records(ctx context.Context, limit int) ([]Record, error)
	Close() error
}

// Record is an audit record of a change made outside the protocol.
type Record struct {
	Time   time.Time `json:"time"`
	Group  string    `json:"group"`
	ID     string    `json:"id"`
	Action string    `json:"action"` // "forced-release", "lease-expired"
	Reason string    `json:"reason,omitempty"`
	// Held is how long the id had held its slot, when known.
	Held string `json:"held,omitempty"`
}
