package sign

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
)

// PublicKey is an Ed25519 public key. Its text form, used in trusted-key files and in the
// remote option verification-ed25519-key, is the standard padded base64 of its 32 bytes
// (docs/formats/signatures.md). Keys are comparable, so they can index maps.
type PublicKey [ed25519.PublicKeySize]byte

// SecretKey is an Ed25519 secret key in libsodium's 64-byte layout, seed || public key, which
// is also crypto/ed25519's PrivateKey layout. Its text form is the base64 of the 64 bytes, as
// ostree's ed25519 engine reads it (docs/formats/signatures.md).
type SecretKey [ed25519.PrivateKeySize]byte

// String returns the base64 form of the key.
func (k PublicKey) String() string { return base64.StdEncoding.EncodeToString(k[:]) }

// Public returns the public half of the key.
func (k SecretKey) Public() PublicKey {
	var p PublicKey
	copy(p[:], k[ed25519.SeedSize:])
	return p
}

// Encode returns the base64 form of the key, the content of a PREFIX.key file.
func (k SecretKey) Encode() string { return base64.StdEncoding.EncodeToString(k[:]) }

// String names the key by its public half and never prints the seed, so that a secret key
// passed to a logger or an error by mistake does not leak.
func (k SecretKey) String() string { return "ed25519 secret key of " + k.Public().String() }

// NewSecretKey derives the secret key of a 32-byte Ed25519 seed (RFC 8032).
func NewSecretKey(seed []byte) (SecretKey, error) {
	if len(seed) != ed25519.SeedSize {
		return SecretKey{}, fmt.Errorf("ed25519 seed of %d bytes, want %d: %w", len(seed), ed25519.SeedSize, errdefs.ErrInvalid)
	}
	var k SecretKey
	copy(k[:], ed25519.NewKeyFromSeed(seed))
	return k, nil
}

// GenerateKey makes a new key pair from 32 bytes of random; a nil random uses crypto/rand.
// The error comes only from reading random.
func GenerateKey(random io.Reader) (SecretKey, PublicKey, error) {
	if random == nil {
		random = rand.Reader
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(random, seed); err != nil {
		return SecretKey{}, PublicKey{}, fmt.Errorf("reading a random ed25519 seed: %w", err)
	}
	k, err := NewSecretKey(seed)
	if err != nil {
		return SecretKey{}, PublicKey{}, err
	}
	return k, k.Public(), nil
}

// ParsePublicKey parses the base64 form of a public key, such as the value of a remote's
// verification-ed25519-key option. Surrounding white space is ignored.
func ParsePublicKey(s string) (PublicKey, error) {
	b, err := decodeBase64(s)
	if err != nil {
		return PublicKey{}, fmt.Errorf("ed25519 public key: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("ed25519 public key of %d bytes, want %d: %w", len(b), ed25519.PublicKeySize, errdefs.ErrInvalid)
	}
	return PublicKey(b), nil
}

// ParseSecretKey parses the base64 form of a secret key. It also checks that the public half
// belongs to the seed: libsodium does not, and a mismatched key signs with signatures that
// no one can verify.
func ParseSecretKey(s string) (SecretKey, error) {
	b, err := decodeBase64(s)
	if err != nil {
		return SecretKey{}, fmt.Errorf("ed25519 secret key: %w", err)
	}
	if len(b) != ed25519.PrivateKeySize {
		return SecretKey{}, fmt.Errorf("ed25519 secret key of %d bytes, want %d: %w", len(b), ed25519.PrivateKeySize, errdefs.ErrInvalid)
	}
	k, err := NewSecretKey(b[:ed25519.SeedSize])
	if err != nil {
		return SecretKey{}, err
	}
	if !bytes.Equal(k[ed25519.SeedSize:], b[ed25519.SeedSize:]) {
		return SecretKey{}, fmt.Errorf("ed25519 secret key: public half does not belong to the seed: %w", errdefs.ErrInvalid)
	}
	return k, nil
}

func decodeBase64(s string) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not base64: %v: %w", err, errdefs.ErrInvalid)
	}
	return b, nil
}

// ParseTrustedKeys reads a trusted- or revoked-keys file: one base64 public key per line;
// blank lines and lines starting with '#' are skipped, anything else that is not a key is an
// error naming its line. Duplicate keys are kept once. A file without keys yields none and no
// error: verifying against no keys fails with ErrUntrusted. ostree itself skips malformed
// lines silently; a typo in a trust file is worth an error here.
func ParseTrustedKeys(r io.Reader) ([]PublicKey, error) {
	var keys []PublicKey
	seen := map[PublicKey]bool{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, err := ParsePublicKey(line)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !seen[k] {
			seen[k] = true
			keys = append(keys, k)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			err = fmt.Errorf("%w: %w", err, errdefs.ErrInvalid)
		}
		return nil, err
	}
	return keys, nil
}

// LoadTrustedKeys reads a trusted- or revoked-keys file (see ParseTrustedKeys).
func LoadTrustedKeys(path string) ([]PublicKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading ed25519 keys: %w", classOf(err))
	}
	defer f.Close()
	keys, err := ParseTrustedKeys(f)
	if err != nil {
		return nil, fmt.Errorf("reading ed25519 keys from %s: %w", path, err)
	}
	return keys, nil
}

// LoadSecretKey reads a secret-key file such as the PREFIX.key that WriteKeyPair writes: one
// base64 secret key; blank lines and '#' comments are skipped.
func LoadSecretKey(path string) (SecretKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return SecretKey{}, fmt.Errorf("reading ed25519 secret key: %w", classOf(err))
	}
	var keys []string
	for line := range strings.Lines(string(b)) {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	if len(keys) != 1 {
		return SecretKey{}, fmt.Errorf("%s holds %d keys, want 1: %w", path, len(keys), errdefs.ErrInvalid)
	}
	k, err := ParseSecretKey(keys[0])
	if err != nil {
		// The message never quotes the file: it is a secret.
		return SecretKey{}, fmt.Errorf("reading %s: %w", path, err)
	}
	return k, nil
}

// WriteKeyPair writes k to PREFIX.key (mode 0600) and its public key to PREFIX.pub (0644),
// each as one base64 line, the files `strata repo keygen --out PREFIX` makes. It never
// replaces an existing file (errdefs.ErrAlreadyExists): losing a signing key is not undoable.
// Each file is written to a temporary name, synced, then linked into place, so a crash
// leaves no half-written key; a crash between the two files leaves PREFIX.key alone, and the
// public key can be derived from it again.
func WriteKeyPair(prefix string, k SecretKey) error {
	secret, public := prefix+".key", prefix+".pub"
	for _, p := range []string{secret, public} {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("writing key pair: %s: %w", p, errdefs.ErrAlreadyExists)
		}
	}
	if err := writeNew(secret, []byte(k.Encode()+"\n"), 0o600); err != nil {
		return err
	}
	return writeNew(public, []byte(k.Public().String()+"\n"), 0o644)
}

// writeNew creates path with exactly data and mode, failing if path exists.
func writeNew(path string, data []byte, mode os.FileMode) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if rerr := os.Remove(tmp); err == nil && rerr != nil {
			err = fmt.Errorf("removing %s: %w", tmp, rerr)
		}
	}()
	// CreateTemp makes the file 0600; Chmod sets the exact mode, whatever the umask.
	err = f.Chmod(mode)
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	// link(2), unlike rename(2), refuses to replace an existing file.
	if err := os.Link(tmp, path); err != nil {
		return fmt.Errorf("writing %s: %w", path, classOf(err))
	}
	return fsutil.FsyncDir(filepath.Dir(path))
}

// classOf attaches an errdefs class to the file-system errors a caller may act on.
func classOf(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case errors.Is(err, os.ErrExist):
		return fmt.Errorf("%w: %w", err, errdefs.ErrAlreadyExists)
	}
	return err
}
