//go:build root && peer

package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/strata-os/strata/internal/agent"
	"github.com/strata-os/strata/internal/graph"
	"github.com/strata-os/strata/internal/graphserver"
	"github.com/strata-os/strata/internal/oci"
	"github.com/strata-os/strata/internal/oci/ocitest"
	"github.com/strata-os/strata/internal/testutil"
)

// imageTree is nodeTree with a dpkg database, so that push splits it by package: "big"
// owns a file no version changes, "tool" owns usr/bin/tool. The kernel stays the same, so
// that two versions differ in tool's layer and the commit's only.
func imageTree(t *testing.T, v string) string {
	t.Helper()
	dir := nodeTree(t, v)
	files := map[string]string{
		"usr/lib/modules/5.10.0-fake/vmlinuz":    "fake kernel\n",
		"usr/lib/os-release":                     "NAME=Test\nPRETTY_NAME=\"Test OS\"\n",
		"usr/etc/motd":                           "welcome\n",
		"usr/share/big/data":                     strings.Repeat("big data\n", 20000),
		"usr/lib/sysimage/dpkg/info/big.list":    "/usr/share/big/data\n",
		"usr/lib/sysimage/dpkg/info/tool.list":   "/usr/bin/tool\n",
		"usr/lib/sysimage/dpkg/info/kernel.list": "/usr/lib/modules/5.10.0-fake/vmlinuz\n/usr/lib/modules/5.10.0-fake/initramfs.img\n",
		"usr/lib/sysimage/dpkg/info/base.list":   "/usr/lib/os-release\n/etc/hostname\n/etc/motd\n",
	}
	for p, data := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// writeSigKey writes a P-256 key pair as strata oci push --sign-key and a containers policy
// read them, and returns the private and public files.
func writeSigKey(t *testing.T, dir, name string) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	priv, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	kf, pf := filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(kf, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: priv}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pf, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		t.Fatal(err)
	}
	return kf, pf
}

// TestNodeFollowsRegistry deploys a node from a tag of Debian's docker-registry, pushes a
// new version to the tag, and upgrades: only the changed layers are downloaded, the origin
// keeps the image reference (container-image-reference=, as rpm-ostree writes it) and
// status shows the new digest.
func TestNodeFollowsRegistry(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	reg := ocitest.StartRegistry(t, false)
	work := t.TempDir()
	src, sys := filepath.Join(work, "src"), filepath.Join(work, "sys")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	commit := func(v string) string {
		return strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable",
			"--tree", imageTree(t, v), "--metadata", "version="+v, "--timestamp", "170000000"+v))
	}
	tag := "docker://" + reg.Host + "/strata/testos:stable"
	push := func() ociPushJSON {
		var pj ociPushJSON
		out := publishMustRun(t, "oci", "push", "--repo", src, "--insecure", "--json", "testos/stable", tag)
		if err := json.Unmarshal([]byte(out), &pj); err != nil {
			t.Fatalf("oci push --json printed %q: %v", out, err)
		}
		return pj
	}
	c1 := commit("1")
	p1 := push()

	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	publishMustRun(t, "deploy", "--sysroot", sys, "--os", "testos", "--insecure", tag)
	d := nodeStatus(t, sys).Deployments[0]
	imgref := "ostree-unverified-registry:" + reg.Host + "/strata/testos:stable"
	if d.Checksum != c1 || d.Refspec != imgref || d.ImageDigest != p1.ManifestDigest {
		t.Fatalf("deploy %s = commit %s, origin %q, digest %s; want %s, %q, %s", tag, d.Checksum, d.Refspec, d.ImageDigest, c1, imgref, p1.ManifestDigest)
	}
	origin, err := os.ReadFile(filepath.Join(d.Path + ".origin"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(origin), "[origin]\ncontainer-image-reference="+imgref+"\n") {
		t.Errorf("origin file = %q, want container-image-reference=%s in [origin]", origin, imgref)
	}

	// Nothing new on the tag.
	code, out, errs := publishRun(t, "upgrade", "--sysroot", sys, "--insecure", "--check")
	if code != exitUnchanged {
		t.Errorf("upgrade --check with the tag unchanged = exit %d (%s%s), want %d", code, out, errs, exitUnchanged)
	}

	// Version 2 changes one package: tool's layer and the commit's layer are new.
	c2 := commit("2")
	p2 := push()
	if p2.Layers != p1.Layers || p2.Layers < 4 {
		t.Fatalf("push of version 2: %d layers, version 1 %d; want the same number, at least 4", p2.Layers, p1.Layers)
	}
	code, out, errs = publishRun(t, "upgrade", "--sysroot", sys, "--insecure", "--check")
	if code != exitOK || !strings.Contains(out, p2.ManifestDigest) {
		t.Errorf("upgrade --check after a push = exit %d (%s%s), want the new digest %s", code, out, errs, p2.ManifestDigest)
	}
	var up upgradeJSON
	out = publishMustRun(t, "upgrade", "--sysroot", sys, "--insecure", "--json")
	if err := json.Unmarshal([]byte(out), &up); err != nil {
		t.Fatalf("upgrade --json printed %q: %v", out, err)
	}
	if up.Origin != "image" || up.Commit != c2 || up.Digest != p2.ManifestDigest || up.Deployed == nil {
		t.Fatalf("upgrade = %s, want image origin, commit %s, digest %s, deployed", out, c2, p2.ManifestDigest)
	}
	if up.LayersFetched != 2 || up.LayersSkipped != p2.Layers-2 {
		t.Errorf("upgrade fetched %d layers and skipped %d of %d; want 2 (tool's and the commit's) and %d",
			up.LayersFetched, up.LayersSkipped, p2.Layers, p2.Layers-2)
	}
	t.Logf("upgrade from version 1 to 2: %d of %d layers, %d bytes", up.LayersFetched, p2.Layers, up.Bytes)
	st := nodeStatus(t, sys)
	if d := st.Deployments[0]; d.Checksum != c2 || d.ImageDigest != p2.ManifestDigest || d.Refspec != imgref {
		t.Errorf("status after upgrade: %+v, want commit %s, digest %s, origin %s", d, c2, p2.ManifestDigest, imgref)
	}
	text := publishMustRun(t, "status", "--sysroot", sys)
	if !strings.Contains(text, "testos:"+imgref) || !strings.Contains(text, "Digest:    "+p2.ManifestDigest) {
		t.Errorf("status = %q, want the image reference and its digest", text)
	}
}

// TestNodeRefusesBadImageSignature follows an ostree-image-signed: reference whose policy
// wants a sigstore signature by one key: an update signed by another key is refused, nothing
// of it is fetched and nothing is deployed.
func TestNodeRefusesBadImageSignature(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	reg := ocitest.StartRegistry(t, false)
	work := t.TempDir()
	src, sys := filepath.Join(work, "src"), filepath.Join(work, "sys")
	good, goodPub := writeSigKey(t, work, "good")
	bad, _ := writeSigKey(t, work, "bad")
	policy := filepath.Join(work, "policy.json")
	if err := os.WriteFile(policy, []byte(`{"default":[{"type":"reject"}],"transports":{"docker":{"`+reg.Host+`/strata":[
		{"type":"sigstoreSigned","keyPath":"`+goodPub+`","signedIdentity":{"type":"matchRepository"}}]}}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	commit := func(v string) string {
		return strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable",
			"--tree", imageTree(t, v), "--metadata", "version="+v, "--timestamp", "170000000"+v))
	}
	tag := "docker://" + reg.Host + "/strata/testos:stable"
	c1 := commit("1")
	publishMustRun(t, "oci", "push", "--repo", src, "--insecure", "--sign-key", good, "testos/stable", tag)
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)

	signedRef := "ostree-image-signed:" + tag
	publishMustRun(t, "rebase", "--sysroot", sys, "--os", "testos", "--insecure", "--policy", policy, signedRef)
	before := nodeStatus(t, sys)
	if d := before.Deployments[0]; d.Checksum != c1 || d.Refspec != signedRef {
		t.Fatalf("rebase %s = %+v, want commit %s with that origin", signedRef, d, c1)
	}

	c2 := commit("2")
	publishMustRun(t, "oci", "push", "--repo", src, "--insecure", "--sign-key", bad, "testos/stable", tag)
	code, out, errs := publishRun(t, "upgrade", "--sysroot", sys, "--insecure", "--policy", policy)
	if code == exitOK || !strings.Contains(errs, "no signature by a trusted key") {
		t.Errorf("upgrade to an image signed by another key = exit %d (%s%s), want refused for its signature", code, out, errs)
	}
	after := nodeStatus(t, sys)
	if len(after.Deployments) != len(before.Deployments) || after.Deployments[0].Checksum != c1 || after.Deployments[0].Staged {
		t.Errorf("deployments after a refused upgrade = %+v, want them unchanged", after.Deployments)
	}
	code, _, _ = publishRun(t, "repo", "show", "--repo", filepath.Join(sys, "ostree/repo"), c2)
	if code == exitOK {
		t.Errorf("commit %s of the refused image is in the sysroot repository; want nothing of it fetched", c2)
	}

	// The same image signed by the right key goes through.
	publishMustRun(t, "oci", "push", "--repo", src, "--insecure", "--sign-key", good, "testos/stable", tag)
	publishMustRun(t, "upgrade", "--sysroot", sys, "--insecure", "--policy", policy)
	if d := nodeStatus(t, sys).Deployments[0]; d.Checksum != c2 || d.Refspec != signedRef {
		t.Errorf("upgrade of a well-signed image = %+v, want commit %s", d, c2)
	}
}

// TestAgentStagesImageRelease: a node rebased onto a registry tag asks the graph for image
// payloads (oci=true), and the agent stages the release's image pinned by digest, with the
// origin still following the tag and recording the new digest.
func TestAgentStagesImageRelease(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	reg := ocitest.StartRegistry(t, false)
	work := t.TempDir()
	src, sys, gdir := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "graph")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	tag := "docker://" + reg.Host + "/strata/testos:stable"
	digests := map[string]string{}
	release := func(v string) string {
		c := strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable",
			"--tree", imageTree(t, v), "--metadata", "version="+v, "--timestamp", "170000000"+v))
		var pj ociPushJSON
		if err := json.Unmarshal([]byte(publishMustRun(t, "oci", "push", "--repo", src, "--insecure", "--json", "testos/stable", tag)), &pj); err != nil {
			t.Fatal(err)
		}
		digests[v] = pj.ManifestDigest
		publishMustRun(t, "graph", "build", "--repo", src, "--ref", "testos/stable", "--stream", "stable", "--out", gdir, "--arch", goArchToBasearch("amd64"))
		return c
	}
	release("1")
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	publishMustRun(t, "rebase", "--sysroot", sys, "--os", "testos", "--insecure", tag)
	// What the node recorded in its origin (layered packages, here a
	// group of the test's own) follows the agent's update.
	d1 := nodeStatus(t, sys).Deployments[0]
	f, err := os.OpenFile(d1.Path+".origin", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("\n[strata-test]\nkept=true\n"); err != nil {
		t.Fatal(err)
	}
	f.Close()
	c2 := release("2")

	// The releases name their images (what a release pipeline adds after pushing).
	relFile := filepath.Join(gdir, "releases.json")
	b, err := os.ReadFile(relFile)
	if err != nil {
		t.Fatal(err)
	}
	var idx graph.ReleaseIndex
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	for i, r := range idx.Releases {
		idx.Releases[i].OCIImages = []graph.OCIImage{{Architecture: goArchToBasearch("amd64"), Image: reg.Host + "/strata/testos",
			DigestRef: reg.Host + "/strata/testos@" + digests[r.Version]}}
	}
	if b, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(relFile, b, 0o644); err != nil {
		t.Fatal(err)
	}
	gs, err := graphserver.New(graphserver.Inputs{Releases: relFile, Updates: filepath.Join(gdir, "updates")})
	if err != nil {
		t.Fatal(err)
	}
	graphSrv := httptest.NewServer(gs)
	defer graphSrv.Close()

	imgref := "ostree-unverified-registry:" + reg.Host + "/strata/testos:stable"
	cfg := agent.Defaults()
	cfg.Cincinnati.BaseURL = graphSrv.URL + "/"
	dep := &sysrootDeployer{cmd: &cobra.Command{}, path: sys, images: imageFlags{reg: oci.RegistryOptions{Insecure: true}}}
	a := agent.New(agent.Options{
		Config: cfg, Deployer: dep, Strategy: agent.Immediate{},
		Graph: &agent.GraphClient{BaseURL: cfg.Cincinnati.BaseURL, Basearch: goArchToBasearch("amd64"), Stream: streamOf(imgref),
			Group: "default", NodeUUID: "975228d46dc94622b9bbe16671e2b58d", OCI: true},
		StateDir: filepath.Join(work, "state"),
	})
	want := reg.Host + "/strata/testos@" + digests["2"]
	rel := agent.Release{Version: "2", Payload: want, Scheme: graph.SchemeOCI}
	before, err := dep.DownloadSize(context.Background(), rel)
	if err != nil || before <= 0 {
		t.Errorf("DownloadSize of release 2 before staging = %d, %v; want the bytes of its new layers", before, err)
	}
	for i := 0; i < 10 && a.Status().State != agent.StateUpdateFinalized; i++ {
		a.Step(context.Background())
	}
	if after, err := dep.DownloadSize(context.Background(), rel); err != nil || after != 0 {
		t.Errorf("DownloadSize of release 2 once staged = %d, %v; want 0", after, err)
	}
	if st := a.Status(); st.State != agent.StateUpdateFinalized || st.Target == nil || st.Target.Payload != want {
		t.Fatalf("agent status = %+v, want %s finalized", st, want)
	}
	publishMustRun(t, "finalize", "--sysroot", sys) // the shutdown
	d := nodeStatus(t, sys).Deployments[0]
	if d.Checksum != c2 || d.Refspec != imgref || d.ImageDigest != digests["2"] || d.Staged {
		t.Errorf("after the agent's update and finalize: %+v, want commit %s from %s, digest %s", d, c2, imgref, digests["2"])
	}
	if origin, err := os.ReadFile(d.Path + ".origin"); err != nil || !strings.Contains(string(origin), "[strata-test]\nkept=true\n") ||
		!strings.Contains(string(origin), digests["2"]) {
		t.Errorf("origin after the agent's update:\n%s\n(%v) want the base's [strata-test] group kept and the new digest", origin, err)
	}
}

// TestRebaseRemoteRef: rebase REMOTE:REF pulls the ref through the remote (verified with its
// keys) and deploys it with REMOTE:REF as the origin, replacing an image origin.
func TestRebaseRemoteRef(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	reg := ocitest.StartRegistry(t, false)
	work := t.TempDir()
	src, sys, key := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	c1 := strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable", "--tree", imageTree(t, "1"),
		"--metadata", "version=1", "--sign-key", key+".key", "--timestamp", "1700000001"))
	publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
	srv := serveRepo(t, src)
	tag := "docker://" + reg.Host + "/strata/testos:stable"
	publishMustRun(t, "oci", "push", "--repo", src, "--insecure", "testos/stable", tag)

	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	publishMustRun(t, "rebase", "--sysroot", sys, "--insecure", tag)
	publishMustRun(t, "repo", "remote", "add", "--repo", filepath.Join(sys, "ostree/repo"), "origin", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	publishMustRun(t, "rebase", "--sysroot", sys, "origin:testos/stable")
	if d := nodeStatus(t, sys).Deployments[0]; d.Checksum != c1 || d.Refspec != "origin:testos/stable" || d.ImageDigest != "" {
		t.Errorf("rebase origin:testos/stable = %+v, want commit %s following origin:testos/stable", d, c1)
	}
	if code, out, errs := publishRun(t, "rebase", "--sysroot", sys, "testos/stable"); code != exitUsage {
		t.Errorf("rebase of a ref without a remote = exit %d (%s%s), want %d", code, out, errs, exitUsage)
	}
}

// TestNodeRebasesOntoImageOfItsCommit: a node that has its commit by an object pull pushes
// it to a registry and rebases onto that image (the e2e oci step does the same); the next
// version on the tag downloads only its changed layers (before the pull recorded the
// layers of the local commit, it downloaded every layer).
func TestNodeRebasesOntoImageOfItsCommit(t *testing.T) {
	testutil.RequireRoot(t)
	testutil.RequireTool(t, "chattr", "e2fsprogs")
	reg := ocitest.StartRegistry(t, false)
	work := t.TempDir()
	src, sys, key := filepath.Join(work, "src"), filepath.Join(work, "sys"), filepath.Join(work, "key")
	publishMustRun(t, "repo", "init", "--repo", src, "--mode", "archive")
	publishMustRun(t, "repo", "keygen", "--out", key)
	commit := func(v string) string {
		return strings.TrimSpace(publishMustRun(t, "repo", "commit", "--repo", src, "--branch", "testos/stable", "--tree", imageTree(t, v),
			"--metadata", "version="+v, "--sign-key", key+".key", "--timestamp", "170000000"+v))
	}
	c1 := commit("1")
	publishMustRun(t, "repo", "summary", "--repo", src, "--sign-key", key+".key")
	srv := serveRepo(t, src)
	publishMustRun(t, "sysroot", "init", "--sysroot", sys, "--os", "testos")
	clearImmutable(t, sys)
	sysRepo := filepath.Join(sys, "ostree/repo")
	publishMustRun(t, "repo", "remote", "add", "--repo", sysRepo, "origin", srv.URL, "--no-gpg-verify", "--trusted-key", key+".pub")
	publishMustRun(t, "rebase", "--sysroot", sys, "origin:testos/stable")

	tag := "docker://" + reg.Host + "/strata/testos:stable"
	publishMustRun(t, "oci", "push", "--repo", sysRepo, "--insecure", c1, tag)
	publishMustRun(t, "rebase", "--sysroot", sys, "--insecure", tag)
	if d := nodeStatus(t, sys).Deployments[0]; d.Checksum != c1 || d.ImageDigest == "" {
		t.Fatalf("rebase %s = %+v, want commit %s with an image digest", tag, d, c1)
	}

	c2 := commit("2")
	var pj ociPushJSON
	if err := json.Unmarshal([]byte(publishMustRun(t, "oci", "push", "--repo", src, "--insecure", "--json", "testos/stable", tag)), &pj); err != nil {
		t.Fatal(err)
	}
	var up upgradeJSON
	out := publishMustRun(t, "upgrade", "--sysroot", sys, "--insecure", "--json")
	if err := json.Unmarshal([]byte(out), &up); err != nil {
		t.Fatalf("upgrade --json printed %q: %v", out, err)
	}
	if up.Commit != c2 || up.LayersFetched != 2 || up.LayersSkipped != pj.Layers-2 {
		t.Errorf("upgrade = commit %s, %d layers fetched, %d skipped of %d; want %s, 2 (tool's and the commit's), %d",
			up.Commit, up.LayersFetched, up.LayersSkipped, pj.Layers, c2, pj.Layers-2)
	}
}
