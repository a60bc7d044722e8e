package sign_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/sign"
)

func mustPublic(t *testing.T, s string) sign.PublicKey {
	t.Helper()
	k, err := sign.ParsePublicKey(s)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func encodeStd(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// genKey returns a key pair derived from a seed of n repeated.
func genKey(t *testing.T, n byte) (sign.SecretKey, sign.PublicKey) {
	t.Helper()
	sk, pk, err := sign.GenerateKey(bytes.NewReader(bytes.Repeat([]byte{n}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return sk, pk
}

func TestSpecVectorKeys(t *testing.T) {
	t.Parallel()
	v := loadVectors(t)

	sk, err := sign.NewSecretKey(specSeed())
	if err != nil {
		t.Fatal(err)
	}
	if got := sk.Encode(); got != specSecret {
		t.Errorf("NewSecretKey(00..1f).Encode() = %s, want %s", got, specSecret)
	}
	if got := sk.Public().String(); got != specPublic {
		t.Errorf("NewSecretKey(00..1f).Public() = %s, want %s", got, specPublic)
	}
	gsk, gpk, err := sign.GenerateKey(bytes.NewReader(specSeed()))
	if err != nil || gsk != sk || gpk != sk.Public() {
		t.Errorf("GenerateKey(00..1f) = %v, %v, %v; want %v, %v", gsk, gpk, err, sk, sk.Public())
	}

	dir := t.TempDir()
	secretPath, publicPath := filepath.Join(dir, "ed25519.secret"), filepath.Join(dir, "ed25519.public")
	if err := os.WriteFile(secretPath, v.secret, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(publicPath, v.public, 0o644); err != nil {
		t.Fatal(err)
	}
	loaded, err := sign.LoadSecretKey(secretPath)
	if err != nil || loaded != sk {
		t.Errorf("LoadSecretKey(signing/ed25519.secret) = %v, %v; want %v", loaded, err, sk)
	}
	trusted, err := sign.LoadTrustedKeys(publicPath)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]sign.PublicKey{sk.Public()}, trusted); diff != "" {
		t.Errorf("LoadTrustedKeys(signing/ed25519.public) (-want +got):\n%s", diff)
	}
}

func TestParsePublicKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want string // base64 of the key, "" for an error
	}{
		{name: "spec key", in: specPublic, want: specPublic},
		{name: "surrounding space", in: "  " + specPublic + "\n", want: specPublic},
		{name: "empty", in: ""},
		{name: "not base64", in: "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg!"},
		{name: "secret key", in: specSecret},
		{name: "31 bytes", in: "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMQ=="},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := sign.ParsePublicKey(tt.in)
			if tt.want == "" {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Errorf("ParsePublicKey(%q) = %v, %v; want ErrInvalid", tt.in, k, err)
				}
				return
			}
			if err != nil || k.String() != tt.want {
				t.Errorf("ParsePublicKey(%q) = %v, %v; want %s", tt.in, k, err, tt.want)
			}
		})
	}
}

func TestParseSecretKey(t *testing.T) {
	t.Parallel()
	_, otherPub := genKey(t, 7)
	raw, _ := sign.ParseSecretKey(specSecret)
	mismatched := append([]byte(nil), raw[:32]...)
	mismatched = append(mismatched, otherPub[:]...)
	tests := []struct {
		name    string
		in      string
		wantErr bool
	}{
		{name: "spec key", in: specSecret},
		{name: "trailing newline", in: specSecret + "\n"},
		{name: "public key", in: specPublic, wantErr: true},
		{name: "not base64", in: "QUJD!!x=", wantErr: true},
		{name: "public half of another key", in: encodeStd(mismatched), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			k, err := sign.ParseSecretKey(tt.in)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Errorf("ParseSecretKey(%q) error = %v, want ErrInvalid", tt.in, err)
				}
				if err != nil && strings.Contains(err.Error(), tt.in) {
					t.Errorf("ParseSecretKey error %q quotes the key", err)
				}
				return
			}
			if err != nil || k.Encode() != specSecret {
				t.Errorf("ParseSecretKey(%q) = %v, %v; want the spec key", tt.in, k, err)
			}
		})
	}
}

func TestSecretKeyStringHidesSeed(t *testing.T) {
	t.Parallel()
	sk, _ := sign.ParseSecretKey(specSecret)
	if got, want := sk.String(), "ed25519 secret key of "+specPublic; got != want {
		t.Errorf("SecretKey.String() = %q, want %q", got, want)
	}
}

func TestParseTrustedKeys(t *testing.T) {
	t.Parallel()
	_, a := genKey(t, 1)
	_, b := genKey(t, 2)
	tests := []struct {
		name    string
		in      string
		want    []sign.PublicKey
		wantErr string // substring of the error; "" for success
	}{
		{name: "one key", in: a.String() + "\n", want: []sign.PublicKey{a}},
		{name: "several keys, comments, blank and CRLF lines",
			in:   "# fleet keys\n\n" + a.String() + "\r\n  " + b.String() + "  \n#" + specPublic + "\n",
			want: []sign.PublicKey{a, b}},
		{name: "no final newline", in: a.String(), want: []sign.PublicKey{a}},
		{name: "duplicate kept once", in: a.String() + "\n" + b.String() + "\n" + a.String() + "\n", want: []sign.PublicKey{a, b}},
		{name: "empty", in: "", want: nil},
		{name: "only comments", in: "# none yet\n", want: nil},
		{name: "malformed line", in: a.String() + "\n\nnot-a-key\n", wantErr: "line 3"},
		{name: "secret key in a trust file", in: specSecret + "\n", wantErr: "line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := sign.ParseTrustedKeys(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if !errors.Is(err, errdefs.ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("ParseTrustedKeys(%q) error = %v, want ErrInvalid mentioning %q", tt.in, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseTrustedKeys(%q) error = %v", tt.in, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseTrustedKeys(%q) (-want +got):\n%s", tt.in, diff)
			}
		})
	}
}

func TestLoadMissingFiles(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing")
	if _, err := sign.LoadTrustedKeys(missing); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("LoadTrustedKeys(missing) error = %v, want ErrNotFound", err)
	}
	if _, err := sign.LoadSecretKey(missing); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("LoadSecretKey(missing) error = %v, want ErrNotFound", err)
	}
}

func TestLoadSecretKeyFileShapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		wantErr bool
	}{
		{name: "one line", content: specSecret + "\n"},
		{name: "comment and blank lines", content: "# signing key\n\n" + specSecret + "\n\n"},
		{name: "empty", content: "", wantErr: true},
		{name: "two keys", content: specSecret + "\n" + specSecret + "\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := filepath.Join(t.TempDir(), "k.key")
			if err := os.WriteFile(p, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			k, err := sign.LoadSecretKey(p)
			if tt.wantErr {
				if !errors.Is(err, errdefs.ErrInvalid) {
					t.Errorf("LoadSecretKey(%q) error = %v, want ErrInvalid", tt.content, err)
				}
				return
			}
			if err != nil || k.Encode() != specSecret {
				t.Errorf("LoadSecretKey(%q) = %v, %v; want the spec key", tt.content, k, err)
			}
		})
	}
}

func TestGenerateKeyShortRandom(t *testing.T) {
	t.Parallel()
	if _, _, err := sign.GenerateKey(bytes.NewReader(make([]byte, 31))); err == nil {
		t.Error("GenerateKey(31 random bytes) error = nil, want an error")
	}
	a, _, err := sign.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := sign.GenerateKey(nil)
	if a == b {
		t.Error("GenerateKey(nil) made the same key twice")
	}
}

func TestWriteKeyPair(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prefix := filepath.Join(dir, "fleet")
	sk, pk := genKey(t, 9)
	if err := sign.WriteKeyPair(prefix, sk); err != nil {
		t.Fatalf("WriteKeyPair(%s) error = %v", prefix, err)
	}

	for _, f := range []struct {
		path    string
		mode    os.FileMode
		content string
	}{
		{prefix + ".key", 0o600, sk.Encode() + "\n"},
		{prefix + ".pub", 0o644, pk.String() + "\n"},
	} {
		fi, err := os.Stat(f.path)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != f.mode {
			t.Errorf("mode of %s = %v, want %v", f.path, fi.Mode().Perm(), f.mode)
		}
		b, _ := os.ReadFile(f.path)
		if string(b) != f.content {
			t.Errorf("content of %s = %q, want %q", f.path, b, f.content)
		}
	}
	if got, err := sign.LoadSecretKey(prefix + ".key"); err != nil || got != sk {
		t.Errorf("LoadSecretKey(PREFIX.key) = %v, %v; want %v", got, err, sk)
	}
	if got, err := sign.LoadTrustedKeys(prefix + ".pub"); err != nil || !cmp.Equal(got, []sign.PublicKey{pk}) {
		t.Errorf("LoadTrustedKeys(PREFIX.pub) = %v, %v; want [%v]", got, err, pk)
	}

	// A second keygen to the same prefix must not replace the key.
	other, _ := genKey(t, 10)
	if err := sign.WriteKeyPair(prefix, other); !errors.Is(err, errdefs.ErrAlreadyExists) {
		t.Errorf("WriteKeyPair over an existing pair error = %v, want ErrAlreadyExists", err)
	}
	if got, _ := sign.LoadSecretKey(prefix + ".key"); got != sk {
		t.Errorf("after a refused WriteKeyPair the key is %v, want %v", got, sk)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{"fleet.key", "fleet.pub"}, names); diff != "" {
		t.Errorf("files after WriteKeyPair (-want +got):\n%s", diff)
	}
}

// FuzzParseTrustedKeys: the trust-file parser never panics, and what it accepts prints back to
// a file that parses to the same keys.
func FuzzParseTrustedKeys(f *testing.F) {
	f.Add("# keys\n" + specPublic + "\n\n")
	f.Add(specSecret)
	f.Fuzz(func(t *testing.T, in string) {
		keys, err := sign.ParseTrustedKeys(strings.NewReader(in))
		if err != nil {
			if !errors.Is(err, errdefs.ErrInvalid) {
				t.Fatalf("ParseTrustedKeys(%q) error = %v, not ErrInvalid", in, err)
			}
			return
		}
		var out strings.Builder
		for _, k := range keys {
			out.WriteString(k.String() + "\n")
		}
		again, err := sign.ParseTrustedKeys(strings.NewReader(out.String()))
		if err != nil || !cmp.Equal(keys, again) {
			t.Fatalf("ParseTrustedKeys(%q) = %v, then %v, %v", in, keys, again, err)
		}
	})
}
