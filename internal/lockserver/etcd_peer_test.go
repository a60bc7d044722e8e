//go:build peer

package lockserver

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/testutil"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// etcdServer is Debian's etcd, started on loopback ports for one test.
type etcdServer struct {
	bin, dir string
	client   string
	peer     string
	cmd      *exec.Cmd
	t        *testing.T
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startEtcd(t *testing.T) *etcdServer {
	t.Helper()
	e := &etcdServer{
		bin: testutil.RequireTool(t, "etcd", "etcd-server"),
		dir: t.TempDir(), t: t,
		client: fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		peer:   fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
	}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *etcdServer) start() {
	e.t.Helper()
	e.cmd = exec.Command(e.bin, "--name", "test", "--data-dir", filepath.Join(e.dir, "data"),
		"--listen-client-urls", e.client, "--advertise-client-urls", e.client,
		"--listen-peer-urls", e.peer, "--initial-advertise-peer-urls", e.peer,
		"--initial-cluster", "test="+e.peer, "--log-level", "error")
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := e.cmd.Start(); err != nil {
		e.t.Fatalf("starting etcd: %v", err)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.client}, DialTimeout: 2 * time.Second})
	if err != nil {
		e.t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Get(ctx, "health")
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("etcd at %s did not answer within 30 s: %v", e.client, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (e *etcdServer) stop() {
	if e.cmd != nil && e.cmd.Process != nil {
		e.cmd.Process.Kill()
		e.cmd.Wait()
		e.cmd = nil
	}
}

func openEtcdFor(t *testing.T, e *etcdServer) Store {
	t.Helper()
	s, err := OpenEtcd([]string{e.client}, 3*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// The server's behaviour over Debian's etcd server; each subtest gets its own etcd, so that
// their groups do not meet.
func TestEtcd(t *testing.T) {
	t.Parallel()
	runConformance(t, func(t *testing.T) Store { return openEtcdFor(t, startEtcd(t)) })
}

// A semaphore written by hand in airlock's layout is honoured, and strata's writes keep it
// readable by airlock (total_slots and sorted holders).
func TestEtcdAirlockLayout(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{e.client}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	key := "com.coreos.airlock/groups/workers/v1/semaphore"
	if _, err := cli.Put(t.Context(), key, `{"total_slots":2,"holders":["airlock-node"]}`); err != nil {
		t.Fatal(err)
	}
	s := New(openEtcdFor(t, e), Config{DefaultSlots: 2}, time.Now, nil)
	if err := s.Lock(t.Context(), fleetlock.ClientParams{ID: "strata-node", Group: "workers"}); err != nil {
		t.Fatalf("second slot = %v", err)
	}
	if err := s.Lock(t.Context(), fleetlock.ClientParams{ID: "third", Group: "workers"}); err == nil {
		t.Fatal("a third node got a slot of two, one held by airlock's record")
	}
	resp, err := cli.Get(t.Context(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	sem, err := fleetlock.ParseSemaphore(resp.Kvs[0].Value)
	if err != nil || sem.TotalSlots != 2 || len(sem.Holders) != 2 || sem.Holders[0] != "airlock-node" || sem.Holders[1] != "strata-node" {
		t.Errorf("stored value = %s, want airlock's form with both holders sorted", resp.Kvs[0].Value)
	}
}

// etcd killed and restarted mid-rollout: while it is down calls fail as unavailable (no slot
// granted), and afterwards the holders are all still there.
func TestEtcdRestart(t *testing.T) {
	t.Parallel()
	e := startEtcd(t)
	s := New(openEtcdFor(t, e), Config{DefaultSlots: 2}, time.Now, nil)
	srv := httptest.NewServer(s)
	defer srv.Close()
	if err := client(srv.URL, "a", "g").PreReboot(t.Context()); err != nil {
		t.Fatal(err)
	}
	e.stop()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	err := client(srv.URL, "b", "g").PreReboot(ctx)
	cancel()
	if err == nil {
		t.Fatal("a slot was granted while etcd was down")
	}
	e.start()
	deadline := time.Now().Add(20 * time.Second)
	for {
		err = client(srv.URL, "b", "g").PreReboot(t.Context())
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("after etcd came back: %v", err)
	}
	if err := client(srv.URL, "c", "g").PreReboot(t.Context()); err == nil {
		t.Error("after the restart a third node got a slot: a's slot was lost")
	}
}
