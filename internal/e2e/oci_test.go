//go:build root && peer && e2e

package e2e

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/strata-os/strata/internal/oci/ocitest"
)

// ociVersion is the OS version the oci step pushes to the tag (testdata/v8.yaml).
const ociVersion = "8"

// ociStep makes the guest follow a registry (docs/oci.md, "Nodes that follow a registry"):
// the booted commit is pushed to a tag of Debian's docker-registry on the host, the guest
// rebases onto the tag (reached as 10.0.2.2), v8 is composed and pushed to the same tag,
// `strata upgrade` in the guest imports only the changed layers, and the guest reboots into
// v8 with the image and its digest as the origin.
func (e *env) ociStep(t *testing.T) {
	e.mustExec(t, "systemctl stop strata-agent || true") // the agent of agent-v3 follows the ref
	reg := ocitest.StartRegistry(t, false)
	port := reg.Host[strings.LastIndexByte(reg.Host, ':')+1:]
	push := func(rev string) string {
		out := e.strata(t, context.Background(), "oci-push-"+rev[:8], "oci", "push", "--repo", e.repo, "--insecure", "--json",
			rev, "docker://"+reg.Host+"/strata/e2e:stable")
		var res struct {
			Digest string `json:"manifest_digest"`
			Layers int    `json:"layers"`
		}
		if err := json.Unmarshal(out, &res); err != nil {
			t.Fatalf("strata oci push --json: %v", err)
		}
		return res.Digest
	}
	booted := bootedDeployment(t, e.status(t))
	// A layered deployment (the layer step) runs a commit derived on the node, which the host's
	// repository never had: the image is its base.
	commit := booted.Checksum
	if booted.Base != "" {
		commit = booted.Base
	}
	start := time.Now()
	d1 := push(commit)
	e.measure(t, "oci: push of the booted (base) commit (%s) to the registry: %s", booted.Version, secs(time.Since(start)))

	image := "docker://10.0.2.2:" + port + "/strata/e2e:stable"
	imgref := "ostree-unverified-registry:10.0.2.2:" + port + "/strata/e2e:stable"
	start = time.Now()
	e.mustExec(t, "strata rebase --insecure "+image)
	e.measure(t, "oci: rebase onto %s in the guest (the booted commit or its base: no layer is new content): %s", image, secs(time.Since(start)))
	if st := e.status(t); st[0].Refspec != imgref || st[0].Digest != d1 || st[0].Checksum != commit {
		t.Fatalf("status after the rebase = %+v, want %s from %s (%s) first", st, commit, imgref, d1)
	}

	e.compose(t, ociVersion)
	dNew := push(e.commits[ociVersion])
	start = time.Now()
	out := e.mustExec(t, "strata upgrade --insecure --json")
	e.measure(t, "oci: upgrade to v"+ociVersion+" in the guest (registry pull + deploy): %s", secs(time.Since(start)))
	var up struct {
		Commit  string `json:"commit"`
		Digest  string `json:"image_digest"`
		Fetched int    `json:"layers_fetched"`
		Skipped int    `json:"layers_skipped"`
		Bytes   int64  `json:"bytes_fetched"`
	}
	if err := json.Unmarshal([]byte(lastJSON(out)), &up); err != nil {
		t.Fatalf("strata upgrade --json: %v\n%s", err, out)
	}
	if up.Commit != e.commits[ociVersion] || up.Digest != dNew {
		t.Fatalf("strata upgrade = commit %s, digest %s; want %s, %s", up.Commit, up.Digest, e.commits[ociVersion], dNew)
	}
	e.measure(t, "oci: the upgrade fetched %d layers (%s) and kept %d", up.Fetched, mib(up.Bytes), up.Skipped)
	if up.Skipped == 0 {
		t.Errorf("the upgrade fetched all %d layers; want the unchanged ones kept", up.Fetched)
	}

	b, took := e.reboot(t)
	if b.Version != ociVersion || !strings.HasPrefix(b.Deployment, e.commits[ociVersion]+".") || b.BootComplete != "success" {
		t.Fatalf("after the image upgrade: version %s, deployment %s, boot-complete %s; want %s, %s.N, success",
			b.Version, b.Deployment, b.BootComplete, ociVersion, e.commits[ociVersion])
	}
	e.measure(t, "oci: reboot into v"+ociVersion+": %s", secs(took))
	if got := strings.TrimSpace(e.mustExec(t, "cat /usr/share/strata-e2e/version")); got != ociVersion {
		t.Errorf("/usr/share/strata-e2e/version = %q, want %s", got, ociVersion)
	}
	if st := bootedDeployment(t, e.status(t)); st.Refspec != imgref || st.Digest != dNew {
		t.Errorf("booted deployment = %+v, want origin %s at %s", st, imgref, dNew)
	}
}
