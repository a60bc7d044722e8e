package boot

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

// The accepting case needs a FAT mount, which this host's kernel cannot
// make (no vfat module): the end-to-end test covers it, where every boot
// runs strata-esp-sync and strata-boot-complete against the real ESP.
func TestCheckESPMount(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := CheckESPMount(dir); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("CheckESPMount(a directory of the test's filesystem) = %v, want ErrFailedPrecondition", err)
	}
	if err := CheckESPMount(filepath.Join(dir, "missing")); err == nil || errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("CheckESPMount(a missing directory) = %v, want the open error", err)
	}
}
