package repo

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
)

// TestConcurrentBeginOwnStaging starts transactions at the same moment,
// round after round: each must get a staging directory of its own, and no
// transaction may adopt, lock or remove the one another just created
// (which once failed 1 pull in 4 with "cannot lock new staging directory").
func TestConcurrentBeginOwnStaging(t *testing.T) {
	t.Parallel()
	r, err := Init(t.TempDir(), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	const rounds, parallel = 150, 6
	for round := range rounds {
		txns := make([]*Txn, parallel)
		errs := make([]error, parallel)
		var start, done sync.WaitGroup
		start.Add(1)
		for i := range parallel {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				txns[i], errs[i] = r.Begin()
			}()
		}
		start.Done()
		done.Wait()
		dirs := map[string]bool{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: Begin() error = %v, want nil", round, err)
			}
			if dirs[txns[i].dir] {
				t.Fatalf("round %d: two transactions share staging directory %s", round, txns[i].dir)
			}
			dirs[txns[i].dir] = true
		}
		for i, txn := range txns {
			// Each staging directory is still there and usable.
			if _, err := txn.WriteMetadata(ostree.ObjectDirMeta, ostree.DirMeta{UID: uint32(round), GID: uint32(i), Mode: ostree.ModeDir | 0o755}.Marshal()); err != nil {
				t.Fatalf("round %d: writing into staging directory %s: %v", round, txn.dir, err)
			}
		}
		for _, txn := range txns {
			if err := txn.Abort(); err != nil {
				t.Fatalf("round %d: Abort() error = %v", round, err)
			}
		}
	}
}

// TestStagingPermissions checks that nothing staged is visible to other
// users: every staging directory is 0700 (tmp/ itself is 0755, as ostree
// makes it and needs it), and an adopted staging directory made 0755 by an
// older version is narrowed to 0700.
func TestStagingPermissions(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	r, err := Init(dir, ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	checkPerm := func(p string, want os.FileMode) {
		t.Helper()
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("permissions of %s = %#o, want %#o", p, got, want)
		}
	}
	checkPerm(filepath.Join(dir, "tmp"), 0o755)
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	checkPerm(txn.dir, 0o700)
	staged := txn.dir
	if err := os.Chmod(staged, 0o755); err != nil {
		t.Fatal(err)
	}
	txn.Suspend()
	txn, err = r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	if txn.dir != staged {
		t.Fatalf("Begin() after Suspend staged into %s, want the adopted %s", txn.dir, staged)
	}
	checkPerm(staged, 0o700)
}

// TestTxnHasObjectStaged: a transaction knows what it staged itself without looking on disk,
// and finds on disk what an adopted staging directory holds from the transaction it replaces;
// neither reports an object that is in neither place.
func TestTxnHasObjectStaged(t *testing.T) {
	t.Parallel()
	r, txn := beginTxn(t, ModeBareUser)
	c, err := txn.WriteContent(ostree.FileInfo{Mode: 0o100644}, strings.NewReader("staged\n"), 7, nil)
	if err != nil {
		t.Fatal(err)
	}
	staged := ostree.ObjectName{Checksum: c, Type: ostree.ObjectFile}
	other := ostree.ObjectName{Checksum: ostree.Checksum{7}, Type: ostree.ObjectFile}
	check := func(txn *Txn, when string) {
		t.Helper()
		if ok, err := txn.HasObject(staged); !ok || err != nil {
			t.Errorf("%s: HasObject(staged) = %v, %v, want true", when, ok, err)
		}
		if ok, err := txn.HasObject(other); ok || err != nil {
			t.Errorf("%s: HasObject(never written) = %v, %v, want false", when, ok, err)
		}
	}
	if txn.adopted {
		t.Fatalf("the first transaction adopted a staging directory")
	}
	check(txn, "fresh staging directory")
	txn.Suspend()
	txn, err = r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	if !txn.adopted {
		t.Fatalf("Begin() after Suspend did not adopt the staging directory")
	}
	check(txn, "adopted staging directory")
}
