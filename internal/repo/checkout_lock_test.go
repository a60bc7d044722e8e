package repo

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestCheckoutWaitsForPrune: while a prune holds the repository lock
// (exclusively, for its whole mark and sweep), a checkout must not read
// the repository; it goes on once the prune is done. Conversely a
// checkout's shared lock keeps a prune out.
func TestCheckoutWaitsForPrune(t *testing.T) {
	t.Parallel()
	r := coNewRepo(t, ModeArchive)
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "file"), []byte("content\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	coCommitDir(t, r, src, "os/stable", "1")
	unlock, err := r.LockExclusive() // what Prune holds while it sweeps
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(t.TempDir(), "co")
	done := make(chan error, 1)
	go func() {
		_, err := Checkout(t.Context(), r, "os/stable", dest, CheckoutOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		unlock()
		t.Fatalf("Checkout() returned %v while the repository was locked for a prune, want it to wait", err)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := os.Lstat(dest); !os.IsNotExist(err) {
		t.Errorf("Lstat(%s) while the prune holds the lock = %v, want not created yet", dest, err)
	}
	unlock()
	if err := <-done; err != nil {
		t.Fatalf("Checkout() after the prune = %v, want success", err)
	}
	if b, err := os.ReadFile(filepath.Join(dest, "file")); err != nil || string(b) != "content\n" {
		t.Errorf("checked-out file = %q, %v; want %q", b, err, "content\n")
	}
}
