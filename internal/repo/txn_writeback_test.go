package repo

import (
	"bytes"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sys/unix"
)

// stageRandom stages n content objects of size bytes each and returns their checksums.
func stageRandom(t *testing.T, txn *Txn, n, size int) []ostree.Checksum {
	t.Helper()
	var out []ostree.Checksum
	for i := range n {
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8), 'x'}, size/3)
		c, err := txn.WriteContent(ostree.FileInfo{Mode: 0o100644}, bytes.NewReader(data), int64(len(data)), nil)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, c)
	}
	return out
}

// A transaction that stages more than writebackEvery bytes starts syncs of the filesystem
// before its commit point, so that the commit point's own syncfs has little left to write;
// the commit point still runs its syncfs before anything becomes visible.
func TestTxnWritebackStartsEarly(t *testing.T) {
	defer func(every int64, sync func(int) error) { writebackEvery, syncfs = every, sync }(writebackEvery, syncfs)
	var calls atomic.Int32
	var visibleAtSync atomic.Bool
	var r *Repo
	var first ostree.Checksum
	writebackEvery = 64 << 10
	syncfs = func(fd int) error {
		calls.Add(1)
		if ok, _ := r.HasObject(ostree.ObjectName{Checksum: first, Type: ostree.ObjectFile}); ok {
			visibleAtSync.Store(true)
		}
		return unix.Syncfs(fd)
	}
	r, txn := beginTxn(t, ModeBareUser)
	first = stageRandom(t, txn, 1, 48<<10)[0] // less than the interval: no sync yet
	sums := append([]ostree.Checksum{first}, stageRandom(t, txn, 7, 47<<10)...)
	if err := txn.wb.wait(); err != nil {
		t.Fatal(err)
	}
	before := calls.Load()
	if before < 1 {
		t.Fatalf("%d background syncs after staging 377 KiB with a 64 KiB interval, want at least 1", before)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := calls.Load(); got != before+1 {
		t.Errorf("Commit made %d syncfs calls, want exactly the commit point's 1", got-before)
	}
	if visibleAtSync.Load() {
		t.Errorf("an object was visible in objects/ at a syncfs before the commit point's")
	}
	for _, c := range sums {
		if ok, err := r.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}); !ok || err != nil {
			t.Errorf("object %s not stored after Commit: %v", c, err)
		}
	}
}

// A write-back error reported by a background sync fails the commit point: nothing becomes
// visible and no ref moves, as when the commit point's own syncfs fails.
func TestTxnWritebackErrorFailsCommit(t *testing.T) {
	defer func(every int64, sync func(int) error) { writebackEvery, syncfs = every, sync }(writebackEvery, syncfs)
	var calls atomic.Int32
	writebackEvery = 64 << 10
	syncfs = func(fd int) error {
		if calls.Add(1) == 1 {
			return unix.EIO
		}
		return unix.Syncfs(fd)
	}
	r, txn := beginTxn(t, ModeBareUser)
	sums := stageRandom(t, txn, 8, 48<<10)
	if err := txn.SetRef("", "test/ref", sums[0]); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); !errors.Is(err, unix.EIO) {
		t.Fatalf("Commit after a background sync failed with EIO = %v, want EIO", err)
	}
	for _, c := range sums {
		if ok, _ := r.HasObject(ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}); ok {
			t.Errorf("object %s visible after a failed commit", c)
		}
	}
	if _, err := r.ResolveRev("test/ref"); err == nil {
		t.Errorf("ref written after a failed commit")
	}
}
