//go:build root

package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/agent"
	"github.com/strata-os/strata/internal/fleetlock"
	"github.com/strata-os/strata/internal/graphserver"
	"github.com/strata-os/strata/internal/lockserver"
	"github.com/strata-os/strata/internal/sysroot"
	"github.com/strata-os/strata/internal/testutil"
)

// The agent on a real sysroot: a release published by `repo commit` and `graph build` is found
// in the graph served by `graph serve`'s server, pulled and verified through the origin remote,
// staged locked (a `strata finalize` at an unrelated shutdown leaves it staged), and finalized
// only once the lock server grants a slot; the slot is given back by the next boot's agent.
func TestAgentUpdatesSysroot(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	work := t.TempDir()
	src, sys, key, gdir := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key"), filepath.Join(work, "graph")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := func(v string) string {
		out := publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable", "--tree", nodeTree(t, v),
			"--metadata", "version="+v, "--sign-key", key+".key", "--timestamp", "170000000"+v)
		publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
		publishMustRun(t, "graph", "build", "--repo", src, "--ref", "testos/stable", "--stream", "stable", "--out", gdir, "--arch", goArchToBasearch("amd64"))
		return strings.TrimSpace(out)
	}
	c1 := commit("1")
	srv := serveRepo(t, src)

	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	sysRepo := filepath.Join(sys, "ostree/repo")
	publishMustRun(t, "repo", "remote", "add", "--repo", sysRepo, "origin", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	publishMustRun(t, "repo", "pull", "--repo", sysRepo, "origin", "testos/stable")
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "origin:testos/stable")
	c2 := commit("2")

	gs, err := graphserver.New(graphserver.Inputs{Releases: filepath.Join(gdir, "releases.json"), Updates: filepath.Join(gdir, "updates")})
	if err != nil {
		t.Fatal(err)
	}
	graphSrv := httptest.NewServer(gs)
	defer graphSrv.Close()
	store, err := lockserver.OpenBolt(filepath.Join(work, "lock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lockSrv := httptest.NewServer(lockserver.New(store, lockserver.Config{DefaultSlots: 1}, time.Now, nil))
	defer lockSrv.Close()
	lockURL, _ := url.Parse(lockSrv.URL + "/")
	other := &fleetlock.Client{BaseURL: lockURL, Params: fleetlock.ClientParams{ID: "another-node", Group: "default"}}
	if err := other.PreReboot(context.Background()); err != nil { // another node holds the only slot
		t.Fatal(err)
	}

	const id = "975228d46dc94622b9bbe16671e2b58d"
	newAgent := func() *agent.Agent {
		cfg := agent.Defaults()
		cfg.Cincinnati.BaseURL = graphSrv.URL + "/"
		return agent.New(agent.Options{
			Config:   cfg,
			Deployer: &sysrootDeployer{cmd: &cobra.Command{}, path: sys},
			Graph:    &agent.GraphClient{BaseURL: cfg.Cincinnati.BaseURL, Basearch: goArchToBasearch("amd64"), Stream: streamOf("origin:testos/stable"), Group: "default", NodeUUID: id},
			Strategy: agent.FleetLock{Client: &fleetlock.Client{BaseURL: lockURL, Params: fleetlock.ClientParams{ID: id, Group: "default"}}},
			StateDir: filepath.Join(work, "state"),
		})
	}
	a := newAgent()
	steps := func(n int) {
		for i := 0; i < n; i++ {
			if a.Step(context.Background()) > 0 {
				return
			}
		}
	}
	steps(10)
	st := a.Status()
	if st.State != agent.StateUpdateStaged || st.Target == nil || st.Target.Payload != c2 || !strings.Contains(st.Waiting, "reboot slot") {
		t.Fatalf("agent status = %+v, want %s staged and waiting for a slot", st, c2)
	}
	s, err := sysroot.Open(sys)
	if err != nil {
		t.Fatal(err)
	}
	staged, ok := s.Staged()
	s.Close()
	if !ok || staged.Checksum.String() != c2 {
		t.Fatalf("staged deployment = %v, %v; want %s", staged.Checksum, ok, c2)
	}
	// An unrelated shutdown: the locked deployment stays staged, the old default boots.
	publishMustRun(t, "finalize", "--sysroot", sys)
	if got := nodeStatus(t, sys); got.Deployments[0].Checksum != c2 || !got.Deployments[0].Staged {
		t.Fatalf("after finalize of a locked stage: %+v", got.Deployments)
	}
	// The other node gives its slot back: the agent takes it and finalizes.
	if err := other.SteadyState(context.Background()); err != nil {
		t.Fatal(err)
	}
	steps(10)
	if st := a.Status(); st.State != agent.StateUpdateFinalized {
		t.Fatalf("after the slot was freed: %+v", st)
	}
	gst := getHolders(t, lockSrv.URL)
	if gst != id {
		t.Errorf("lock holders = %q, want this node %s", gst, id)
	}
	publishMustRun(t, "finalize", "--sysroot", sys) // the shutdown
	if got := nodeStatus(t, sys); got.Deployments[0].Checksum != c2 || got.Deployments[0].Staged || got.Deployments[1].Checksum != c1 {
		t.Fatalf("after finalize: %+v, want %s the default and %s the rollback", got.Deployments, c2, c1)
	}
	// "Reboot": the new deployment is the default; a new agent reports steady state.
	a = newAgent()
	a.Step(context.Background())
	a.Step(context.Background())
	if gst := getHolders(t, lockSrv.URL); gst != "" {
		t.Errorf("lock holders after the new boot's steady state = %q, want none", gst)
	}
}

func getHolders(t *testing.T, base string) string {
	t.Helper()
	st := struct {
		Holders []struct{ ID string }
	}{}
	code, body := httpGetJSON(t, base+"/v1/groups/default", &st)
	if code != 200 {
		t.Fatalf("GET group = %d %s", code, body)
	}
	var ids []string
	for _, h := range st.Holders {
		ids = append(ids, h.ID)
	}
	return strings.Join(ids, ",")
}

func httpGetJSON(t *testing.T, u string, v any) (int, string) {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, v); err != nil {
		return resp.StatusCode, fmt.Sprintf("%s (%v)", b, err)
	}
	return resp.StatusCode, string(b)
}
