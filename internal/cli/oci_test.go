package cli

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestOCIPushPull sends the ostree-written test vectors' commit through an OCI archive and
// back: the pull prints the same commit checksum, and fsck finds the copy clean.
func TestOCIPushPull(t *testing.T) {
	t.Parallel()
	src := filepath.Join(inspVectors(t), "repo-archive")
	archive := "oci-archive:" + filepath.Join(t.TempDir(), "os.tar")
	out, errOut, code := inspRun(t, "oci", "push", "--repo", src, "test/ref", archive, "--json")
	if code != 0 {
		t.Fatalf("strata oci push = exit %d, %s", code, errOut)
	}
	var pushed ociPushJSON
	if err := json.Unmarshal([]byte(out), &pushed); err != nil {
		t.Fatalf("strata oci push printed %q: %v", out, err)
	}
	if pushed.Commit != inspC2 || !strings.HasPrefix(pushed.ManifestDigest, "sha256:") || pushed.Layers < 2 {
		t.Errorf("strata oci push = %+v, want commit %s, a digest and at least 2 layers", pushed, inspC2)
	}
	dst := filepath.Join(t.TempDir(), "dst")
	if _, errOut, code := inspRun(t, "repo", "init", "--repo", dst, "--mode", "bare-user"); code != 0 {
		t.Fatalf("strata repo init = exit %d, %s", code, errOut)
	}
	out, errOut, code = inspRun(t, "oci", "pull", "--repo", dst, "--ref", "test/ref", archive)
	if code != 0 || strings.TrimSpace(out) != inspC2 {
		t.Fatalf("strata oci pull = exit %d, %q, %s, want %s", code, out, errOut, inspC2)
	}
	if out, errOut, code := inspRun(t, "repo", "fsck", "--repo", dst); code != 0 {
		t.Errorf("strata repo fsck after the pull = exit %d, %s %s", code, out, errOut)
	}
	_, errOut, code = inspRun(t, "oci", "pull", "--repo", dst, "docker:/bad")
	if code != exitInvalid || !strings.Contains(errOut, "cannot pull") {
		t.Errorf("strata oci pull of a bad reference = exit %d, %q, want exit %d (invalid) and \"cannot pull\"", code, errOut, exitInvalid)
	}
}
