package vmtest

import (
	"testing"
)

// TestLockCacheNested takes a fixture's lock while holding another's, as Accel does when its
// KVM proof needs the kernel: with one lock for the whole cache this waited on itself forever.
func TestLockCacheNested(t *testing.T) {
	dir := t.TempDir()
	inner := false
	lockCache(t, dir, "kvm-verdict", func() error {
		lockCache(t, dir, "kernel-x", func() error {
			inner = true
			return nil
		})
		return nil
	})
	if !inner {
		t.Fatal("lockCache(kernel-x) inside lockCache(kvm-verdict) did not run its function")
	}
}
