package lockserver

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	bolt "go.etcd.io/bbolt"
)

var (
	bucketGroups = []byte("groups")
	bucketAudit  = []byte("audit")
)

// boltStore keeps the semaphores in one bbolt file: the default for a single lock server. Each
// Update is one bbolt read-write transaction, durable when it returns.
type boltStore struct{ db *bolt.DB }

// OpenBolt opens (creating) the store file at path. bbolt locks the file, so a second server on
// the same file waits up to 5 s and then fails instead of corrupting it.
func OpenBolt(path string) (Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("opening the lock store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketGroups, bucketAudit} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initializing the lock store %s: %w", path, err)
	}
	return &boltStore{db: db}, nil
}

func (s *boltStore) Update(_ context.Context, group string, init fleetlock.Semaphore, fn func(*fleetlock.Semaphore) (bool, error)) (fleetlock.Semaphore, error) {
	var out fleetlock.Semaphore
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketGroups)
		sem := init
		if v := b.Get([]byte(group)); v != nil {
			var err error
			if sem, err = fleetlock.ParseSemaphore(v); err != nil {
				return fmt.Errorf("group %s: %w", group, err)
			}
		}
		changed, err := fn(&sem)
		if err != nil {
			return err
		}
		out = sem
		if !changed && b.Get([]byte(group)) != nil {
			return nil
		}
		return b.Put([]byte(group), sem.Marshal())
	})
	return out, err
}

func (s *boltStore) Get(_ context.Context, group string) (fleetlock.Semaphore, bool, error) {
	var sem fleetlock.Semaphore
	var ok bool
	err := s.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketGroups).Get([]byte(group))
		if v == nil {
			return nil
		}
		var err error
		sem, err = fleetlock.ParseSemaphore(v)
		ok = err == nil
		return err
	})
	return sem, ok, err
}

func (s *boltStore) Groups(context.Context) ([]string, error) {
	var out []string
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketGroups).ForEach(func(k, _ []byte) error {
			out = append(out, string(k))
			return nil
		})
	})
	return out, err
}

func (s *boltStore) Audit(_ context.Context, r Record) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		seq, _ := b.NextSequence()
		v, _ := json.Marshal(r)
		return b.Put([]byte(fmt.Sprintf("%020d", seq)), v)
	})
}

func (s *boltStore) Records(_ context.Context, limit int) ([]Record, error) {
	var out []Record
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("audit record %s: %v: %w", k, err, errdefs.ErrCorrupt)
			}
			out = append(out, r)
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}

func (s *boltStore) Close() error { return s.db.Close() }
