package ocitest

import (
	"go/build"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// UpstreamSkopeoVersion is the upstream skopeo that scripts/deps builds from the Go module
// proxy: Debian 12's skopeo 1.9 has sigstore signing and sigstoreSigned policies disabled.
const UpstreamSkopeoVersion = "v1.16.1"

// UpstreamSkopeo returns the path of the upstream skopeo scripts/deps builds,
// $GOPATH/bin/skopeo-v1.16.1 (or $STRATA_SKOPEO), and fails the test when it is missing or
// another version.
func UpstreamSkopeo(t testing.TB) string {
	t.Helper()
	bin := os.Getenv("STRATA_SKOPEO")
	if bin == "" {
		bin = filepath.Join(build.Default.GOPATH, "bin", "skopeo-"+UpstreamSkopeoVersion)
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		t.Fatalf("upstream skopeo %s not found at %s (%v): run scripts/deps, which builds it from the Go module proxy, or set STRATA_SKOPEO",
			UpstreamSkopeoVersion, bin, err)
	}
	if !strings.Contains(string(out), " "+strings.TrimPrefix(UpstreamSkopeoVersion, "v")) {
		t.Fatalf("%s is %s, want skopeo %s: run scripts/deps", bin, strings.TrimSpace(string(out)), UpstreamSkopeoVersion)
	}
	return bin
}
