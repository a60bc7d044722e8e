package testutil

import (
	"runtime"
	"testing"

	"golang.org/x/sys/unix"
)

// InMountNamespace runs fn on a thread of its own in a new private mount namespace and waits
// for it. The thread is never unlocked: it ends with fn, and the namespace and its mounts with
// it, so nothing leaks to the host. Commands that fn runs in-process, and the processes they
// start, are in the namespace too. Paths under /proc/self show the main thread's namespace: use
// /proc/thread-self inside fn. fn reports failures with t.Error (not t.Fatal: it runs on
// another goroutine) and returns.
func InMountNamespace(t testing.TB, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
			t.Errorf("unshare(CLONE_NEWNS): %v", err)
			return
		}
		if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
			t.Errorf("making / private in the new namespace: %v", err)
			return
		}
		fn()
	}()
	<-done
}
