package repo

import (
	"errors"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// The exported readers verify what they read; only the explicitly named
// unverified path returns damaged bytes.
func TestReadersVerify(t *testing.T) {
	t.Parallel()
	fx := newFaultFixture(t, ModeArchive)
	tree := fx.c2.Objects["sub"]
	commit := ostree.ObjectName{Checksum: fx.c2.Commit, Type: ostree.ObjectCommit}
	if tree.Type != ostree.ObjectDirTree {
		t.Fatalf("fixture object sub = %s, want a dirtree", tree)
	}
	// Undamaged, both paths agree.
	for _, n := range []ostree.ObjectName{tree, commit} {
		a, err := fx.r.ReadMetadata(n.Type, n.Checksum)
		if err != nil {
			t.Fatalf("ReadMetadata(%s) = %v", n, err)
		}
		b, err := fx.r.ReadMetadataUnverified(n.Type, n.Checksum)
		if err != nil || string(a) != string(b) {
			t.Fatalf("ReadMetadataUnverified(%s) = %d bytes, %v, want ReadMetadata's %d", n, len(b), err, len(a))
		}
	}
	if meta, err := fx.r.ReadCommitMeta(fx.c2.Commit); err != nil || meta == nil {
		t.Fatalf("ReadCommitMeta = %d bytes, %v, want the detached metadata", len(meta), err)
	}

	flipByte(t, fx.path(tree), middle)
	flipByte(t, fx.path(commit), middle)
	for _, n := range []ostree.ObjectName{tree, commit} {
		if _, err := fx.r.ReadMetadata(n.Type, n.Checksum); !errors.Is(err, errdefs.ErrCorrupt) {
			t.Errorf("ReadMetadata(damaged %s) = %v, want ErrCorrupt", n, err)
		}
		if _, err := fx.r.ReadMetadataUnverified(n.Type, n.Checksum); err != nil {
			t.Errorf("ReadMetadataUnverified(damaged %s) = %v, want the bytes", n, err)
		}
	}
	if _, err := fx.r.ReadDirTree(tree.Checksum); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("ReadDirTree(damaged) = %v, want ErrCorrupt", err)
	}
	if _, err := fx.r.ReadCommit(commit.Checksum); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("ReadCommit(damaged) = %v, want ErrCorrupt", err)
	}
	txn, err := fx.r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	if _, err := txn.ReadMetadata(tree.Type, tree.Checksum); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("Txn.ReadMetadata(damaged %s) = %v, want ErrCorrupt", tree, err)
	}
	if _, err := txn.ReadMetadataUnverified(tree.Type, tree.Checksum); err != nil {
		t.Errorf("Txn.ReadMetadataUnverified(damaged %s) = %v, want the bytes", tree, err)
	}
}
