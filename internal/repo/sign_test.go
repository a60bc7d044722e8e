package repo

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/sign"
)

func signTestKey(t *testing.T, seed byte) sign.SecretKey {
	t.Helper()
	k, err := sign.NewSecretKey(bytes.Repeat([]byte{seed}, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestSignCommit signs a commit twice with one key and once with another:
// the first signature is added and verifies, the repeat adds nothing, the
// second key's signature is appended next to the first.
func TestSignCommit(t *testing.T) {
	t.Parallel()
	r := coNewRepo(t, ModeArchive)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := coCommitDir(t, r, dir, "os/stable", "1")
	a, b := signTestKey(t, 1), signTestKey(t, 2)
	verifyA := sign.NewEd25519Verifier([]sign.PublicKey{a.Public()}, nil)
	verifyB := sign.NewEd25519Verifier([]sign.PublicKey{b.Public()}, nil)

	if _, _, err := r.VerifyCommit("os/stable", verifyA); !errors.Is(err, sign.ErrNoSignature) {
		t.Fatalf("VerifyCommit(unsigned) error = %v, want ErrNoSignature", err)
	}
	res, err := r.SignCommit("os/stable", a)
	if err != nil || !res.Added || res.Commit != c || res.Key != a.Public().String() {
		t.Fatalf("SignCommit(os/stable, a) = %+v, %v; want added, commit %s, key %s", res, err, c, a.Public())
	}
	if got, vr, err := r.VerifyCommit("os/stable", verifyA); err != nil || got != c || vr.Key != a.Public().String() {
		t.Fatalf("VerifyCommit(os/stable, a) = %s, %+v, %v; want %s by %s", got, vr, err, c, a.Public())
	}
	if _, _, err := r.VerifyCommit("os/stable", verifyB); !errors.Is(err, sign.ErrUntrusted) {
		t.Fatalf("VerifyCommit(os/stable, b) error = %v, want ErrUntrusted", err)
	}
	before, _ := r.ReadCommitMeta(c)
	if res, err := r.SignCommit(c.String(), a); err != nil || res.Added {
		t.Fatalf("SignCommit again with a = %+v, %v; want not added", res, err)
	}
	if after, _ := r.ReadCommitMeta(c); !bytes.Equal(before, after) {
		t.Fatalf("SignCommit again with a changed the detached metadata")
	}
	if res, err := r.SignCommit("os/stable", b); err != nil || !res.Added {
		t.Fatalf("SignCommit(os/stable, b) = %+v, %v; want added", res, err)
	}
	for _, v := range []sign.Verifier{verifyA, verifyB} {
		if _, _, err := r.VerifyCommit("os/stable", v); err != nil {
			t.Errorf("VerifyCommit after two signers: %v", err)
		}
	}
}

// TestSignCommitCorrupt: a commit whose bytes do not hash to its name is
// neither signed nor verified (errdefs.ErrCorrupt).
func TestSignCommitCorrupt(t *testing.T) {
	t.Parallel()
	r := coNewRepo(t, ModeArchive)
	dir := t.TempDir()
	c := coCommitDir(t, r, dir, "os/stable", "1")
	p := r.ObjectPath(ostree.ObjectName{Checksum: c, Type: ostree.ObjectCommit})
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 1
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := r.SignCommit("os/stable", signTestKey(t, 1)); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("SignCommit(corrupt) error = %v, want ErrCorrupt", err)
	}
	if _, _, err := r.VerifyCommit("os/stable", sign.NewEd25519Verifier(nil, nil)); !errors.Is(err, errdefs.ErrCorrupt) {
		t.Errorf("VerifyCommit(corrupt) error = %v, want ErrCorrupt", err)
	}
}
