package fleetlock

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
)

// Semaphore is one group's reboot slots and who holds them.
type Semaphore struct {
	TotalSlots uint64 `json:"total_slots"`
	// Holders is kept sorted, as airlock keeps it.
	Holders []string `json:"holders"`
	// Acquired records when each holder took its slot (Unix seconds); holders that airlock
	// added have no entry.
	Acquired map[string]int64 `json:"strata_acquired,omitempty"`
}

// ErrFull is the class of a lock refused because every slot is held.
var ErrFull = fmt.Errorf("all slots held: %w", errdefs.ErrConflict)

// NewSemaphore returns an empty semaphore with the given number of slots.
func NewSemaphore(slots uint64) Semaphore {
	return Semaphore{TotalSlots: slots, Holders: []string{}}
}

// Holds reports whether id holds a slot.
func (s Semaphore) Holds(id string) bool {
	_, found := slices.BinarySearch(s.Holders, id)
	return found
}

// Lock gives id a slot. It returns changed=false when id already held one (a recursive lock
// succeeds without a write), and an error wrapping ErrFull when no slot is free.
func (s *Semaphore) Lock(id string, now time.Time) (changed bool, err error) {
	i, found := slices.BinarySearch(s.Holders, id)
	if found {
		return false, nil
	}
	if uint64(len(s.Holders)) >= s.TotalSlots {
		return false, fmt.Errorf("all %d semaphore slots currently locked: %w", s.TotalSlots, ErrFull)
	}
	s.Holders = slices.Insert(s.Holders, i, id)
	if s.Acquired == nil {
		s.Acquired = map[string]int64{}
	}
	s.Acquired[id] = now.Unix()
	return true, nil
}

// Unlock releases id's slot. It returns changed=false when id held none.
func (s *Semaphore) Unlock(id string) (changed bool) {
	i, found := slices.BinarySearch(s.Holders, id)
	if !found {
		return false
	}
	s.Holders = slices.Delete(s.Holders, i, i+1)
	delete(s.Acquired, id)
	return true
}

// Expired returns the holders that took their slot more than lease ago. Holders without an
// acquisition time (written by airlock) never expire.
func (s Semaphore) Expired(lease time.Duration, now time.Time) []string {
	if lease <= 0 {
		return nil
	}
	var out []string
	for _, h := range s.Holders {
		if at, ok := s.Acquired[h]; ok && now.Sub(time.Unix(at, 0)) > lease {
			out = append(out, h)
		}
	}
	return out
}

// MaxSemaphoreBytes bounds a stored semaphore value.
const MaxSemaphoreBytes = 1 << 20

// ParseSemaphore decodes a stored semaphore and checks it: holders sorted and unique, no more
// holders than slots would be allowed to grow (a shrunk slot count keeps its holders until
// they release).
func ParseSemaphore(b []byte) (Semaphore, error) {
	if len(b) > MaxSemaphoreBytes {
		return Semaphore{}, fmt.Errorf("semaphore value of %d bytes: %w", len(b), errdefs.ErrCorrupt)
	}
	var s Semaphore
	if err := json.Unmarshal(b, &s); err != nil {
		return Semaphore{}, fmt.Errorf("decoding semaphore: %v: %w", err, errdefs.ErrCorrupt)
	}
	if s.Holders == nil {
		s.Holders = []string{}
	}
	if !slices.IsSorted(s.Holders) || len(slices.Compact(slices.Clone(s.Holders))) != len(s.Holders) {
		return Semaphore{}, fmt.Errorf("semaphore holders are not sorted and unique: %w", errdefs.ErrCorrupt)
	}
	return s, nil
}

// Marshal encodes the semaphore in airlock's form.
func (s Semaphore) Marshal() []byte {
	b, _ := json.Marshal(s)
	return b
}
