//go:build root

package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/agent"
	"github.com/strata-os/strata/internal/delta"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"github.com/strata-os/strata/internal/testutil"
)

// fetchLog records the paths a server sent and the body bytes of each.
type fetchLog struct {
	mu    sync.Mutex
	bytes map[string]int64
}

type countingWriter struct {
	http.ResponseWriter
	add func(int)
}

func (w countingWriter) Write(b []byte) (int, error) {
	n, err := w.ResponseWriter.Write(b)
	w.add(n)
	return n, err
}

func serveLogged(t *testing.T, path string) (*httptest.Server, *fetchLog) {
	inner := serveRepo(t, path)
	l := &fetchLog{bytes: map[string]int64{}}
	h := inner.Config.Handler
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(countingWriter{w, func(n int) {
			l.mu.Lock()
			l.bytes[r.URL.Path] += int64(n)
			l.mu.Unlock()
		}}, r)
	}))
	t.Cleanup(srv.Close)
	return srv, l
}

// take returns the bytes sent per path since the last call, and forgets them.
func (l *fetchLog) take() map[string]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := l.bytes
	l.bytes = map[string]int64{}
	return out
}

// deltaBytes checks that a pull fetched the static delta from..to (its
// superblock and parts, no content object) and returns the bytes of the
// delta's files.
func deltaBytes(t *testing.T, src string, sent map[string]int64, from, to string) int64 {
	t.Helper()
	f, _ := ostree.ParseChecksum(from)
	c, _ := ostree.ParseChecksum(to)
	dir := "/" + delta.Name{From: f, To: c}.Dir() + "/"
	var n int64
	parts := 0
	for p, b := range sent {
		switch {
		case strings.HasPrefix(p, dir):
			n += b
			if !strings.HasSuffix(p, "/superblock") {
				parts++
			}
		case strings.HasSuffix(p, ".filez"):
			t.Errorf("the pull fetched content object %s loose", p)
		}
	}
	if sent[dir+"superblock"] == 0 || parts == 0 {
		t.Fatalf("the pull fetched %v, want the superblock and parts under %s", sent, dir)
	}
	r, err := repo.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	sb, err := delta.Read(r, delta.Name{From: f, To: c})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := delta.ReadSuperblockFile(r, sb.Name)
	if want := int64(len(raw)) + int64(sb.DownloadSize()); n != want {
		t.Errorf("the pull fetched %d bytes of delta files, the delta has %d", n, want)
	}
	return n
}

// TestUpgradeAndAgentUseDeltas: a publisher runs `repo summary
// --generate-deltas 1` after each release. `strata upgrade` on a sysroot
// deployed from the remote pulls the next release through the delta from
// the deployed commit (the superblock and parts, no content object
// loose); the agent's deployer knows the download size from the next
// delta's superblock before it stages, and its Stage pulls that delta.
func TestUpgradeAndAgentUseDeltas(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	work := t.TempDir()
	src, sys, key := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := func(v string) string {
		out := publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable", "--tree", nodeTree(t, v),
			"--metadata", "version="+v, "--sign-key", key+".key", "--timestamp", "170000000"+v)
		publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key", "--generate-deltas", "1")
		return strings.TrimSpace(out)
	}
	c1 := commit("1")
	srv, log := serveLogged(t, src)

	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	sysRepo := filepath.Join(sys, "ostree/repo")
	publishMustRun(t, "repo", "remote", "add", "--repo", sysRepo, "origin", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	publishMustRun(t, "repo", "pull", "--repo", sysRepo, "origin", "testos/stable")
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "origin:testos/stable")

	c2 := commit("2")
	log.take()
	publishMustRun(t, "upgrade", "--sysroot", sys)
	n := deltaBytes(t, src, log.take(), c1, c2)
	t.Logf("upgrade %s to %s fetched %d bytes of delta", c1[:12], c2[:12], n)
	if got := nodeStatus(t, sys).Deployments[0].Checksum; got != c2 {
		t.Fatalf("default deployment after upgrade = %s, want %s", got, c2)
	}

	c3 := commit("3")
	d := &sysrootDeployer{cmd: &cobra.Command{}, path: sys}
	rel := agent.Release{Version: "3", Payload: c3, Scheme: "checksum"}
	log.take()
	size, err := d.DownloadSize(context.Background(), rel)
	if err != nil {
		t.Fatalf("DownloadSize(%s) = %v, want the delta's size", c3[:12], err)
	}
	if err := d.Stage(context.Background(), rel, func(int64, int64) {}); err != nil {
		t.Fatalf("Stage(%s) = %v", c3[:12], err)
	}
	// Sizing and staging together fetch the delta once: the superblock the sizing read is
	// the one the pull applies (a second fetch would count its bytes twice here).
	if n := deltaBytes(t, src, log.take(), c2, c3); size != n {
		t.Errorf("DownloadSize = %d, sizing and staging fetched %d bytes of delta", size, n)
	}
	if st := nodeStatus(t, sys); st.Deployments[0].Checksum != c3 || !st.Deployments[0].Staged {
		t.Errorf("deployments after Stage = %+v, want %s staged", st.Deployments, c3)
	}
}
