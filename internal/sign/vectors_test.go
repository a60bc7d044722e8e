package sign_test

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/strata-os/strata/internal/testutil"
)

// The ed25519 vector (docs/formats/vectors.md): seed 00..1f, its keys in ostree's base64 forms,
// and its signature over the 158 bytes of commit C1.
const (
	specSecret    = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8DoQe/884Qvh1w3RjnS8CZZ+TWMJulDV8d3IZkElUxuA=="
	specPublic    = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
	specSignature = "e88f29023125b860865bbb4fa03fe52e4567637877ab36186179c71719689327d84c4f020712dd14572297a1c2b003731dbf845c98d49199a052b687ecbc8b0f"
	c1Checksum    = "4e5608541a7900d8b604541ec7ffa70700a6dd3aabc7e71e145a25ac5f306a28"
	// gpgSampleIssuer is the issuer fingerprint inside signing/C1.commitmeta.gpg.
	gpgSampleIssuer = "AE71B6258FA043FB25BF1C9606733AA7A70CCEF2"
)

func specSeed() []byte {
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	return seed
}

// vectors holds the files of the OSTree test vectors these tests use.
type vectors struct {
	c1         []byte // commit C1 object
	c1Dummy    []byte // repo-archive's C1 .commitmeta: two dummy signatures written by ostree
	c1Ed25519  []byte // signing/C1.commitmeta.ed25519
	c1GPG      []byte // signing/C1.commitmeta.gpg, written by `ostree gpg-sign`
	summarySig []byte // repo-archive/summary.sig, dummy-signed by ostree
	secret     []byte // signing/ed25519.secret
	public     []byte // signing/ed25519.public
}

// The vectors are extracted once for the package: extraction dominates the run time, and the
// tests only read these bytes.
var (
	vectorsOnce sync.Once
	vectorsData *vectors
)

// loadVectors returns the files above, extracting the vectors on first use.
func loadVectors(t testing.TB) vectors {
	t.Helper()
	vectorsOnce.Do(func() { vectorsData = readVectors(t) })
	if vectorsData == nil {
		t.Fatal("the test vectors failed to load in another test")
	}
	return *vectorsData
}

func readVectors(t testing.TB) *vectors {
	t.Helper()
	dir := testutil.Vectors(t)
	read := func(rel string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, rel))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	obj := filepath.Join("repo-archive", "objects", c1Checksum[:2], c1Checksum[2:])
	v := &vectors{
		c1:         read(obj + ".commit"),
		c1Dummy:    read(obj + ".commitmeta"),
		c1Ed25519:  read("signing/C1.commitmeta.ed25519"),
		c1GPG:      read("signing/C1.commitmeta.gpg"),
		summarySig: read("repo-archive/summary.sig"),
		secret:     read("signing/ed25519.secret"),
		public:     read("signing/ed25519.public"),
	}
	if sum := sha256.Sum256(v.c1); hex.EncodeToString(sum[:]) != c1Checksum || len(v.c1) != 158 {
		t.Fatalf("commit C1 in the vectors: %d bytes, sha256 %x; want 158 bytes, %s", len(v.c1), sum, c1Checksum)
	}
	return v
}

func mustHex(t *testing.T, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
