package vm

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
)

// testdata/bcj.xz is `xz --check=crc32 --x86 --lzma2=dict=1MiB` of 64 KiB of synthetic x86-like
// bytes (an ELF magic, then CALL/JMP opcodes with rel32 operands among filler), made with
// xz-utils 5.4: the same filter chain as the kernel's bzImage.
const bcjSHA256 = "35d2eec143fce98bc47e935246e367ec8c5808ad62ef615000fdd805f6485eb4"

func TestExtractVmlinux(t *testing.T) {
	t.Parallel()
	stream, err := os.ReadFile("testdata/bcj.xz")
	if err != nil {
		t.Fatal(err)
	}
	// A bzImage is setup code and a decompressor before the payload; an xz magic can also
	// show up in that code without a stream behind it.
	bz := append([]byte("MZ setup code \xfd7zXZ\x00 not a stream "), stream...)
	bz = append(bz, "trailing data"...)
	got, err := ExtractVmlinux(bz)
	if err != nil {
		t.Fatalf("ExtractVmlinux(bcj.xz) = %v", err)
	}
	sum := sha256.Sum256(got)
	if h := hex.EncodeToString(sum[:]); h != bcjSHA256 {
		t.Errorf("ExtractVmlinux(bcj.xz) sha256 = %s, want %s", h, bcjSHA256)
	}

	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"no stream", []byte("MZ just code"), errdefs.ErrUnsupported},
		{"corrupt payload", corrupt(stream, len(stream)/2), errdefs.ErrCorrupt},
		{"corrupt check", corrupt(stream, len(stream)-40), errdefs.ErrCorrupt},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if _, err := ExtractVmlinux(tc.in); !errors.Is(err, tc.want) {
				t.Errorf("ExtractVmlinux(%s) = %v, want %v", tc.name, err, tc.want)
			}
		})
	}
}

func corrupt(b []byte, at int) []byte {
	c := append([]byte(nil), b...)
	c[at] ^= 0x55
	return c
}
