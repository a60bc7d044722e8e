package prepareroot

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/strata-os/strata/internal/errdefs"
)

// ext4Image returns the first 2 KiB of an ext4 filesystem with a label and UUID.
func ext4Image(label string, uuid [16]byte) []byte {
	b := make([]byte, 2048)
	binary.LittleEndian.PutUint16(b[1024+0x38:], 0xEF53)
	copy(b[1024+0x68:], uuid[:])
	copy(b[1024+0x78:], label)
	return b
}

type gptPart struct {
	name string
	guid [16]byte // on-disk (mixed-endian) bytes
}

// gptImage returns a disk start with a GPT of 128-byte entries at LBA 2.
func gptImage(lbs int, parts []gptPart) []byte {
	b := make([]byte, 2*lbs+128*128)
	h := b[lbs:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	for i, p := range parts {
		e := b[2*lbs+i*128:]
		if p.name == "" {
			continue // unused slot
		}
		copy(e[:16], "type-guid-nonzer")
		copy(e[16:32], p.guid[:])
		for j, c := range utf16.Encode([]rune(p.name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	return b
}

var (
	fsUUID   = [16]byte{0x6c, 0x1e, 0x2d, 0x4a, 0x9b, 0x01, 0x4c, 0x3e, 0x8f, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77}
	partGUID = [16]byte{0x78, 0x56, 0x34, 0x12, 0x34, 0x12, 0x78, 0x56, 0x9a, 0xbc, 0xde, 0xf0, 0x12, 0x34, 0x56, 0x78}
)

// fakeBlock lays out a sysfs block class and /dev for disk vda with
// partitions vda1 (ESP, no filesystem here) and vda2 (ext4 "sysroot").
func fakeBlock(t *testing.T) BlockDevices {
	t.Helper()
	dir := t.TempDir()
	b := BlockDevices{SysBlock: filepath.Join(dir, "sys/class/block"), Dev: filepath.Join(dir, "dev")}
	devs := filepath.Join(dir, "sys/devices/pci0000:00/virtio0/block")
	mkdir(t, b.SysBlock)
	mkdir(t, b.Dev)
	mkdir(t, filepath.Join(devs, "vda/vda1"))
	mkdir(t, filepath.Join(devs, "vda/vda2"))
	symlink(t, "../../devices/pci0000:00/virtio0/block/vda", filepath.Join(b.SysBlock, "vda"))
	for i, p := range []string{"vda1", "vda2"} {
		symlink(t, "../../devices/pci0000:00/virtio0/block/vda/"+p, filepath.Join(b.SysBlock, p))
		if err := os.WriteFile(filepath.Join(devs, "vda", p, "partition"), []byte{byte('1' + i), '\n'}, 0o444); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string][]byte{
		"vda":  gptImage(512, []gptPart{{"ESP", [16]byte{1}}, {"root", partGUID}}),
		"vda1": make([]byte, 4096),
		"vda2": ext4Image("sysroot", fsUUID),
	}
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(b.Dev, n), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return b
}

func TestFindRootDevice(t *testing.T) {
	t.Parallel()
	b := fakeBlock(t)
	vda2 := filepath.Join(b.Dev, "vda2")
	tests := []struct {
		name    string
		spec    string
		want    string
		wantErr error
	}{
		{"device node", "/dev/vda2", vda2, nil},
		{"label", "LABEL=sysroot", vda2, nil},
		{"uuid", "UUID=6c1e2d4a-9b01-4c3e-8f11-223344556677", vda2, nil},
		{"uuid upper case", "UUID=6C1E2D4A-9B01-4C3E-8F11-223344556677", vda2, nil},
		{"partlabel", "PARTLABEL=root", vda2, nil},
		{"partuuid", "PARTUUID=12345678-1234-5678-9abc-def012345678", vda2, nil},
		{"by-label link", "/dev/disk/by-label/sysroot", vda2, nil},
		{"by-partlabel link", "/dev/disk/by-partlabel/root", vda2, nil},
		{"missing node", "/dev/vdb", "", errdefs.ErrNotFound},
		{"unknown label", "LABEL=other", "", errdefs.ErrNotFound},
		{"unknown partlabel", "PARTLABEL=nope", "", errdefs.ErrNotFound},
		{"unsupported form", "8:2", "", errdefs.ErrInvalid},
		{"unknown key", "ZFS=pool", "", errdefs.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := b.FindRootDevice(tt.spec)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("FindRootDevice(%s) = %q, %v; want %v", tt.spec, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("FindRootDevice(%s) = %q, %v; want %q", tt.spec, got, err, tt.want)
			}
		})
	}
	t.Run("no sysfs yet", func(t *testing.T) {
		t.Parallel()
		b := BlockDevices{SysBlock: filepath.Join(t.TempDir(), "none"), Dev: t.TempDir()}
		if _, err := b.FindRootDevice("LABEL=x"); !errors.Is(err, errdefs.ErrNotFound) {
			t.Errorf("FindRootDevice(LABEL=x) without sysfs = %v, want ErrNotFound", err)
		}
	})
}

func TestReadGPT(t *testing.T) {
	t.Parallel()
	for _, lbs := range []int{512, 4096} {
		img := gptImage(lbs, []gptPart{{"ESP", [16]byte{1}}, {}, {"root", partGUID}})
		parts, err := ReadGPT(strings.NewReader(string(img)))
		if err != nil {
			t.Fatalf("ReadGPT(%d-byte sectors) = %v", lbs, err)
		}
		if len(parts) != 128 || parts[0].Name != "ESP" || parts[1] != (GPTPartition{}) ||
			parts[2] != (GPTPartition{Name: "root", UUID: "12345678-1234-5678-9abc-def012345678"}) {
			t.Errorf("ReadGPT(%d-byte sectors) = %d entries %+v, want ESP, unused, root", lbs, len(parts), parts[:3])
		}
	}
	if _, err := ReadGPT(strings.NewReader(string(make([]byte, 8192)))); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReadGPT(zeros) = %v, want ErrNotFound", err)
	}
}

func TestReadExt4Superblock(t *testing.T) {
	t.Parallel()
	label, uuid, err := ReadExt4Superblock(strings.NewReader(string(ext4Image("0123456789abcdef", fsUUID))))
	if err != nil || label != "0123456789abcdef" || uuid != "6c1e2d4a-9b01-4c3e-8f11-223344556677" {
		t.Errorf("ReadExt4Superblock = %q, %q, %v; want the 16-byte label and the UUID", label, uuid, err)
	}
	if _, _, err := ReadExt4Superblock(strings.NewReader(string(make([]byte, 2048)))); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("ReadExt4Superblock(zeros) = %v, want ErrNotFound", err)
	}
}
