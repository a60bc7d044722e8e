package sign_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sign"
)

// TestLoadTrustedKeyFiles reads every file, keeps each key once in order,
// and refuses a file without keys and a missing one.
func TestLoadTrustedKeyFiles(t *testing.T) {
	t.Parallel()
	_, a := genKey(t, 1)
	_, b := genKey(t, 2)
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	fa := write("a.pub", a.String()+"\n")
	fab := write("ab.pub", "# both\n"+a.String()+"\n"+b.String()+"\n")
	empty := write("empty.pub", "# none\n")

	got, err := sign.LoadTrustedKeyFiles(fa, fab)
	if err != nil {
		t.Fatalf("LoadTrustedKeyFiles(a, ab) error = %v", err)
	}
	if diff := cmp.Diff([]sign.PublicKey{a, b}, got); diff != "" {
		t.Errorf("LoadTrustedKeyFiles(a, ab) (-want +got):\n%s", diff)
	}
	if got, err := sign.LoadTrustedKeyFiles(); err != nil || len(got) != 0 {
		t.Errorf("LoadTrustedKeyFiles() = %v, %v; want no keys", got, err)
	}
	if _, err := sign.LoadTrustedKeyFiles(fa, empty); !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), empty) {
		t.Errorf("LoadTrustedKeyFiles(a, empty) error = %v, want ErrInvalid naming %s", err, empty)
	}
	if _, err := sign.LoadTrustedKeyFiles(filepath.Join(dir, "missing")); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("LoadTrustedKeyFiles(missing) error = %v, want ErrNotFound", err)
	}
}

// TestParseSecretKeyPublic: a public key given as the secret key is named
// as what it is.
func TestParseSecretKeyPublic(t *testing.T) {
	t.Parallel()
	_, pub := genKey(t, 3)
	_, err := sign.ParseSecretKey(pub.String())
	if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), "that is an ed25519 public key") {
		t.Errorf("ParseSecretKey(public key) error = %v, want ErrInvalid saying it is a public key", err)
	}
}
