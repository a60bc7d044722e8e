package lockserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fleetlock"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// etcd keys. The semaphore key is airlock's, so that airlock and strata can serve the same fleet
// (one after the other, or side by side); strata's audit records live under a prefix of its own.
const (
	airlockPrefix = "com.coreos.airlock/groups/"
	airlockSuffix = "/v1/semaphore"
	auditPrefix   = "strata.fleetlock/audit/"
	// casAttempts bounds the compare-and-swap retries of one Update under contention.
	casAttempts = 8
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
// is retried, up to casAttempts times, before it is reported as a conflict.
func (s *etcdStore) Update(ctx context.Context, group string, init fleetlock.Semaphore, fn func(*fleetlock.Semaphore) (bool, error)) (fleetlock.Semaphore, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	key := SemaphoreKey(group)
	_, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", 0)).Then(clientv3.OpPut(key, string(init.Marshal()))).Commit()
	if err != nil {
		return fleetlock.Semaphore{}, fmt.Errorf("creating the semaphore of group %s: %v: %w", group, err, errdefs.ErrUnavailable)
	}
	for attempt := 0; attempt < casAttempts; attempt++ {
		resp, err := s.cli.Get(ctx, key)
		if err != nil {
			return fleetlock.Semaphore{}, fmt.Errorf("reading the semaphore of group %s: %v: %w", group, err, errdefs.ErrUnavailable)
		}
		if len(resp.Kvs) != 1 || resp.Kvs[0].Version == 0 {
			return fleetlock.Semaphore{}, fmt.Errorf("semaphore of group %s vanished: %w", group, errdefs.ErrConflict)
		}
		kv := resp.Kvs[0]
		sem, err := fleetlock.ParseSemaphore(kv.Value)
		if err != nil {
			return fleetlock.Semaphore{}, fmt.Errorf("group %s: %w", group, err)
		}
		changed, err := fn(&sem)
		if err != nil || !changed {
			return sem, err
		}
		txn, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.Version(key), "=", kv.Version)).Then(clientv3.OpPut(key, string(sem.Marshal()))).Commit()
		if err != nil {
			return fleetlock.Semaphore{}, fmt.Errorf("writing the semaphore of group %s: %v: %w", group, err, errdefs.ErrUnavailable)
		}
		if txn.Succeeded {
			return sem, nil
		}
	}
	return fleetlock.Semaphore{}, fmt.Errorf("conflict on the semaphore of group %s after %d attempts: %w", group, casAttempts, errdefs.ErrConflict)
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
