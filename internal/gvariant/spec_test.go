package gvariant_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math/bits"
	"testing"

	"github.com/strata-os/strata/internal/gvariant"
)

// The worked examples of docs/formats/gvariant.md (and the tree1:/
// dirtree of its offset-width section), built from their inputs and checked byte for byte and by
// the object checksum ostree gave them.

// be32 and be64 return the value whose little-endian serialization is x
// big-endian, as libostree stores uid, gid, mode and the commit timestamp.
func be32(x uint32) uint32 { return bits.ReverseBytes32(x) }
func be64(x uint64) uint64 { return bits.ReverseBytes64(x) }

const (
	sumRootDirMeta = "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
	sumTree1Root   = "0b51c2765671ba10e1ce809d2fc8809f87e066b5c1f7024c7c385ea3c718089a"
	sumTree1Bin    = "230db4e51acc220a7118c2f5904c9e45b637e0ef4a6093ba58aab0c6e303ae51"
	sumEmptyTree   = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	sumRunSh       = "89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5"
	sumHelloTxt    = "81381808c56d4f3d643ec12f6a18fcf2993af8daba7c2a1b2cbfc315b39424c6"
	sumLink        = "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"
	sumXattrTxt    = "09440d3415864dfdb27893ce4dd9a8741c585acc9b4a634c71311776eeb8be32"
)

var specExamples = []struct {
	name     string
	sig      string
	val      any
	want     []byte
	checksum string // sha256 of want: the object's name
}{
	{
		name: "§2.7 dirmeta tree2:/xdir",
		sig:  "(uuua(ayay))",
		val: gvariant.Tuple{be32(1000), be32(1000), be32(0o40700), []any{
			gvariant.Tuple{[]byte("user.dirattr\x00"), []byte("d")},
		}},
		want: bs(
			hx("000003e8 000003e8 000041c0"), // uid/gid/mode big-endian
			"user.dirattr", 0,                // xattr name, NUL included
			"d",  // value, no NUL
			0x0d, // (ayay): end of member 0
			0x0f, // a(ayay): end of element 0, array-relative
		),
		checksum: "77947626095f65a27c60384c15bed185dbe272715295f051a1adec4ee76dd85b",
	},
	{
		name:     "§2.7 dirmeta root 0755",
		sig:      "(uuua(ayay))",
		val:      gvariant.Tuple{uint32(0), uint32(0), be32(0o40755), []any{}},
		want:     hx("00000000 00000000 000041ed"),
		checksum: sumRootDirMeta,
	},
	{
		name: "§2.8 commit C1",
		sig:  "(a{sv}aya(say)sstayay)",
		val: gvariant.Tuple{
			[]gvariant.DictEntry{
				{Key: "version", Value: v("s", "1.0")},
				{Key: "ostree.ref-binding", Value: v("as", []any{"test/ref"})},
			},
			[]byte(nil), // no parent
			[]any{},     // no related objects
			"Test subject",
			"Test body",
			be64(1672531200), // 2023-01-01T00:00:00Z
			hx(sumTree1Root),
			hx(sumRootDirMeta),
		},
		want: bs(
			"version", 0, // 00 a{sv}[0].key
			"1.0", 0, 0, "s", // 08 value v
			0x08,                    // 0e dict-entry key end
			0x00,                    // 0f pad to 8
			"ostree.ref-binding", 0, // 10 a{sv}[1].key, ends 0x23
			0, 0, 0, 0, 0, // 23 pad to 0x28
			"test/ref", 0, 0x09, // 28 v child as
			0, "as", // 32 v separator and type
			0x13,       // 35 dict-entry key end = 19
			0x0f, 0x36, // 36 a{sv} element ends
			"Test subject", 0, // 38 subject
			"Test body", 0, // 45 body, ends 0x4f
			0x00,                               // 4f pad t to 8
			hx("00000000 63b0cd00"),            // 50 timestamp big-endian
			hx(sumTree1Root),                   // 58 root dirtree
			hx(sumRootDirMeta),                 // 78 root dirmeta
			0x78, 0x4f, 0x45, 0x38, 0x38, 0x38, // 98 tuple offsets, reversed
		),
		checksum: "4e5608541a7900d8b604541ec7ffa70700a6dd3aabc7e71e145a25ac5f306a28",
	},
	{
		name: "§2.9 dirtree tree1:/bin",
		sig:  "(a(say)a(sayay))",
		val: gvariant.Tuple{
			[]any{gvariant.Tuple{"run.sh", hx(sumRunSh)}},
			[]any{},
		},
		want: bs(
			"run.sh", 0,
			hx(sumRunSh),
			0x07, // (say): end of s
			0x28, // a(say): end of element 0 = 40
			0x29, // outer tuple: end of member 0 = 41
		),
		checksum: sumTree1Bin,
	},
	{
		name:     "§2.9 dirtree empty",
		sig:      "(a(say)a(sayay))",
		val:      gvariant.Tuple{[]any{}, []any{}},
		want:     bs(0x00), // both arrays empty; the offset of member 0 remains
		checksum: sumEmptyTree,
	},
	{
		name: "§2.5 dirtree tree1:/ (273 bytes)",
		sig:  "(a(say)a(sayay))",
		val: gvariant.Tuple{
			[]any{
				gvariant.Tuple{"hello.txt", hx(sumHelloTxt)},
				gvariant.Tuple{"link", hx(sumLink)},
				gvariant.Tuple{"xattr.txt", hx(sumXattrTxt)},
			},
			[]any{
				gvariant.Tuple{"bin", hx(sumTree1Bin), hx(sumRootDirMeta)},
				gvariant.Tuple{"empty", hx(sumEmptyTree), hx(sumRootDirMeta)},
			},
		},
		want: bs(
			// files: 124-byte body with 1-byte offsets
			"hello.txt", 0, hx(sumHelloTxt), 0x0a,
			"link", 0, hx(sumLink), 0x05,
			"xattr.txt", 0, hx(sumXattrTxt), 0x0a,
			0x2b, 0x51, 0x7c,
			// dirs: 142-byte body with 1-byte offsets
			"bin", 0, hx(sumTree1Bin), hx(sumRootDirMeta), 0x24, 0x04,
			"empty", 0, hx(sumEmptyTree), hx(sumRootDirMeta), 0x26, 0x06,
			0x46, 0x8e,
			// outer tuple: 271-byte body, so a 2-byte offset
			0x7f, 0x00,
		),
		checksum: sumTree1Root,
	},
}

func TestSpecExamples(t *testing.T) {
	t.Parallel()
	for _, tc := range specExamples {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if sum := sha256.Sum256(tc.want); hex.EncodeToString(sum[:]) != tc.checksum {
				t.Fatalf("sha256(want) = %x, want %s: the expected bytes are wrong", sum, tc.checksum)
			}
			typ := gvariant.MustType(tc.sig)
			got, err := gvariant.Marshal(typ, tc.val)
			if err != nil {
				t.Fatalf("Marshal(%s, …) error: %v", tc.sig, err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("Marshal(%s, …) =\n%x\nwant\n%x", tc.sig, got, tc.want)
			}
			roundTrip(t, typ, tc.val)
		})
	}
}
