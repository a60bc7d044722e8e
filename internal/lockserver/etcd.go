package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcd keys. The semaphore key is airlock's, so that airlock and strata can serve the same fleet
// (one after the other, or side by side); strata's audit records live under a prefix of its own.
const (
	airlockPrefix = "com.coreos.airlock/groups/"
	airlockSuffix = "/v1/semaphore"
	auditPrefix   = "strata.fleetlock/audit/"
)

// SemaphoreKey returns airlock's etcd key of a group's semaphore.
func SemaphoreKey(group string) string {
	return airlockPrefix + url.QueryEscape(group) + airlockSuffix
}

type etcdStore struct {
	cli     *clientv3.Client
	timeout time.Duration
}

// OpenEtcd connects to an etcd v3 cluster. Each operation is bounded by timeout (airlock's
// default is 3 s).
func OpenEtcd(endpoints []string, timeout time.Duration) (Store, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("connecting to etcd %s: %v: %w", strings.Join(endpoints, ","), err, errdefs.ErrUnavailable)
	}
	return &etcdStore{cli: cli, timeout: timeout}, nil
}

// Update is airlock's algorithm: create the key if absent (a transaction on version 0), read
// it, change it, and write it back in a transaction conditioned on the version read. A lost race
// costs no extra read (the transaction's else branch returns the value that won) and is retried
// after a short randomized pause, which grows with each loss, for as long as the operation's
// timeout allows: under a burst of nodes releasing at once every caller gets through, and only a
// store that stays contended past the timeout reports a conflict.
func (s *etcdStore) Update(ctx context.Context, group string, init fleetlock.Semaphore, fn func(*fleetlock.Semaphore) (bool, error)) (fleetlock.Semaphore, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := SemaphoreKey(group)
	created, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", 0)).
		Then(clientv3.OpPut(key, string(init.Marshal()))).
		Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fleetlock.Semaphore{}, fmt.Errorf("creating the semaphore of group %s: %v: %w", group, err, errdefs.ErrUnavailable)
	}
	// Created: the key's first version holds init (a writer that changed it since makes the
	// compare-and-swap below fail and return what it wrote). Not created: the else branch read it.
	kv := &mvccpb.KeyValue{Value: init.Marshal(), Version: 1}
	if !created.Succeeded {
		if kv, err = oneKV(group, created.Responses[0].GetResponseRange().Kvs); err != nil {
			return fleetlock.Semaphore{}, err
		}
	}
	pause := time.Millisecond
	for attempt := 1; ; attempt++ {
		sem, err := fleetlock.ParseSemaphore(kv.Value)
		if err != nil {
			return fleetlock.Semaphore{}, fmt.Errorf("group %s: %w", group, err)
		}
		changed, err := fn(&sem)
		if err != nil || !changed {
			return sem, err
		}
		txn, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", kv.Version)).
			Then(clientv3.OpPut(key, string(sem.Marshal()))).
			Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			if ctx.Err() != nil && attempt > 1 {
				return fleetlock.Semaphore{}, fmt.Errorf("conflict on the semaphore of group %s: %d attempts in %s: %w", group, attempt, s.timeout, errdefs.ErrConflict)
			}
			return fleetlock.Semaphore{}, fmt.Errorf("writing the semaphore of group %s: %v: %w", group, err, errdefs.ErrUnavailable)
		}
		if txn.Succeeded {
			return sem, nil
		}
		if kv, err = oneKV(group, txn.Responses[0].GetResponseRange().Kvs); err != nil {
			return fleetlock.Semaphore{}, err
		}
		// Another writer won; wait a random part of the pause so that the losers spread out.
		t := time.NewTimer(time.Duration(rand.Int64N(int64(pause))) + time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return fleetlock.Semaphore{}, fmt.Errorf("conflict on the semaphore of group %s: %d attempts in %s: %w", group, attempt, s.timeout, errdefs.ErrConflict)
		case <-t.C:
		}
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// oneKV is the semaphore's key-value of a range response, which must hold exactly one.
func oneKV(group string, kvs []*mvccpb.KeyValue) (*mvccpb.KeyValue, error) {
	if len(kvs) != 1 || kvs[0].Version == 0 {
		return nil, fmt.Errorf("semaphore of group %s vanished: %w", group, errdefs.ErrConflict)
	}
	return kvs[0], nil
}

func (s *etcdStore) Get(ctx context.Context, group string) (fleetlock.Semaphore, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, SemaphoreKey(group))
	if err != nil {
		return fleetlock.Semaphore{}, false, fmt.Errorf("reading the semaphore of group %s: %v: %w", group, err, errdefs.ErrUnavailable)
	}
	if len(resp.Kvs) == 0 {
		return fleetlock.Semaphore{}, false, nil
	}
	sem, err := fleetlock.ParseSemaphore(resp.Kvs[0].Value)
	return sem, err == nil, err
}

func (s *etcdStore) Groups(ctx context.Context) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, airlockPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("listing groups: %v: %w", err, errdefs.ErrUnavailable)
	}
	var out []string
	for _, kv := range resp.Kvs {
		name, ok := strings.CutSuffix(strings.TrimPrefix(string(kv.Key), airlockPrefix), airlockSuffix)
		if !ok {
			continue
		}
		if g, err := url.QueryUnescape(name); err == nil {
			out = append(out, g)
		}
	}
	return out, nil
}

func (s *etcdStore) Audit(ctx context.Context, r Record) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	v, _ := json.Marshal(r)
	key := fmt.Sprintf("%s%020d-%s", auditPrefix, r.Time.UnixNano(), url.QueryEscape(r.ID))
	if _, err := s.cli.Put(ctx, key, string(v)); err != nil {
		return fmt.Errorf("writing an audit record: %v: %w", err, errdefs.ErrUnavailable)
	}
	return nil
}

func (s *etcdStore) Records(ctx context.Context, limit int) ([]Record, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	resp, err := s.cli.Get(ctx, auditPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, fmt.Errorf("reading audit records: %v: %w", err, errdefs.ErrUnavailable)
	}
	out := make([]Record, 0, len(resp.Kvs))
	for i := len(resp.Kvs) - 1; i >= 0; i-- {
		var r Record
		if err := json.Unmarshal(resp.Kvs[i].Value, &r); err != nil {
			return nil, errors.Join(fmt.Errorf("audit record %s", resp.Kvs[i].Key), err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (s *etcdStore) Close() error { return s.cli.Close() }
