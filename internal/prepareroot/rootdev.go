package prepareroot

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"

	"github.com/strata-os/strata/internal/errdefs"
)

// Block device lookup without udev. root= may be
//   - a device node: /dev/vda2, /dev/nvme0n1p2 (also /dev/disk/by-label/X,
//     by-uuid/X, by-partlabel/X and by-partuuid/X, which are mapped to the
//     forms below since no udev creates those links in the initramfs);
//   - LABEL=X or UUID=X of an ext2/3/4 filesystem (read from its superblock);
//   - PARTLABEL=X or PARTUUID=X of a GPT partition (read from the disk's GPT).
// Other filesystems' labels, MBR PARTUUIDs (SIGNATURE-NN) and MAJ:MIN forms
// are not supported.

// BlockDevices is where FindRootDevice looks: the kernel's view of block
// devices and the directory of their device nodes.
type BlockDevices struct {
	SysBlock string // /sys/class/block: one entry per disk and partition
	Dev      string // /dev
}

// DefaultBlockDevices is the running kernel's view.
var DefaultBlockDevices = BlockDevices{SysBlock: "/sys/class/block", Dev: "/dev"}

var byLinks = map[string]string{
	"/dev/disk/by-label/":     "LABEL=",
	"/dev/disk/by-uuid/":      "UUID=",
	"/dev/disk/by-partlabel/": "PARTLABEL=",
	"/dev/disk/by-partuuid/":  "PARTUUID=",
}

// FindRootDevice returns the device node for a root= value, or an error
// wrapping errdefs.ErrNotFound when no device matches (yet: the caller polls).
func (b BlockDevices) FindRootDevice(spec string) (string, error) {
	for prefix, form := range byLinks {
		if v, ok := strings.CutPrefix(spec, prefix); ok {
			spec = form + v
		}
	}
	key, val, _ := strings.Cut(spec, "=")
	switch {
	case strings.HasPrefix(spec, "/dev/"):
		p := filepath.Join(b.Dev, strings.TrimPrefix(spec, "/dev/"))
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("device %s: %w", spec, errdefs.ErrNotFound)
		}
		return p, nil
	case val == "":
		return "", fmt.Errorf("root=%s: want /dev/..., LABEL=, UUID=, PARTLABEL= or PARTUUID=: %w", spec, errdefs.ErrInvalid)
	}
	var match func(name string) bool
	switch key {
	case "LABEL", "UUID":
		match = func(name string) bool {
			fsLabel, fsUUID, err := readExt4(filepath.Join(b.Dev, name))
			if err != nil {
				return false
			}
			if key == "LABEL" {
				return fsLabel == val
			}
			return strings.EqualFold(fsUUID, val)
		}
	case "PARTLABEL", "PARTUUID":
		match = func(name string) bool {
			p, ok := b.gptEntry(name)
			if !ok {
				return false
			}
			if key == "PARTLABEL" {
				return p.Name == val
			}
			return strings.EqualFold(p.UUID, val)
		}
	default:
		return "", fmt.Errorf("root=%s: want /dev/..., LABEL=, UUID=, PARTLABEL= or PARTUUID=: %w", spec, errdefs.ErrInvalid)
	}
	names, err := b.names()
	if err != nil {
		return "", err
	}
	for _, n := range names {
		if match(n) {
			return filepath.Join(b.Dev, n), nil
		}
	}
	return "", fmt.Errorf("no block device with %s: %w", spec, errdefs.ErrNotFound)
}

// names lists the block devices, sorted so that the choice among duplicates
// is stable.
func (b BlockDevices) names() ([]string, error) {
	ents, err := os.ReadDir(b.SysBlock)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("listing block devices: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, e := range ents {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	return names, nil
}

// gptEntry returns the GPT entry of partition name, read from its disk.
func (b BlockDevices) gptEntry(name string) (GPTPartition, bool) {
	sys := filepath.Join(b.SysBlock, name)
	num, err := os.ReadFile(filepath.Join(sys, "partition"))
	if err != nil {
		return GPTPartition{}, false // a whole disk
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(num)))
	if err != nil || n < 1 {
		return GPTPartition{}, false
	}
	// /sys/class/block/vda2 links to .../block/vda/vda2: the parent is the disk.
	resolved, err := filepath.EvalSymlinks(sys)
	if err != nil {
		return GPTPartition{}, false
	}
	disk := filepath.Base(filepath.Dir(resolved))
	f, err := os.Open(filepath.Join(b.Dev, disk))
	if err != nil {
		return GPTPartition{}, false
	}
	defer f.Close()
	parts, err := ReadGPT(f)
	if err != nil || n > len(parts) {
		return GPTPartition{}, false
	}
	return parts[n-1], true
}

// readExt4 returns the label and UUID of the ext2/3/4 filesystem on dev.
func readExt4(dev string) (label, uuid string, err error) {
	f, err := os.Open(dev)
	if err != nil {
		return "", "", err
	}
	defer f.Close()
	return ReadExt4Superblock(f)
}

// ReadExt4Superblock returns the volume label and UUID of an ext2/3/4
// filesystem, read from its superblock at byte 1024.
func ReadExt4Superblock(r io.ReaderAt) (label, uuid string, err error) {
	sb := make([]byte, 0x88)
	if _, err := r.ReadAt(sb, 1024); err != nil {
		return "", "", fmt.Errorf("reading superblock: %w", err)
	}
	if binary.LittleEndian.Uint16(sb[0x38:]) != 0xEF53 {
		return "", "", fmt.Errorf("no ext2/3/4 superblock: %w", errdefs.ErrNotFound)
	}
	label = string(bytes.TrimRight(sb[0x78:0x88], "\x00"))
	return label, formatUUID(sb[0x68:0x78], false), nil
}

// GPTPartition is one used entry of a GUID partition table.
type GPTPartition struct {
	Name string // the partition label (PARTLABEL)
	UUID string // the unique partition GUID (PARTUUID), lower case
}

// ReadGPT returns the entries of the GUID partition table on a disk, indexed
// by partition number - 1 (unused entries are zero). It tries logical block
// sizes 512 and 4096. The CRCs are not checked: the kernel has already
// accepted the table when it created the partitions.
func ReadGPT(r io.ReaderAt) ([]GPTPartition, error) {
	for _, lbs := range []int64{512, 4096} {
		hdr := make([]byte, 92)
		if _, err := r.ReadAt(hdr, lbs); err != nil {
			continue
		}
		if string(hdr[:8]) != "EFI PART" {
			continue
		}
		entLBA := int64(binary.LittleEndian.Uint64(hdr[72:]))
		count := int(binary.LittleEndian.Uint32(hdr[80:]))
		size := int(binary.LittleEndian.Uint32(hdr[84:]))
		// The UEFI spec allows 128 * 2^n bytes per entry; real tables use 128.
		if size < 128 || size > 4096 || size%8 != 0 || count > 1024 {
			return nil, fmt.Errorf("GPT header: %d entries of %d bytes: %w", count, size, errdefs.ErrCorrupt)
		}
		buf := make([]byte, count*size)
		if _, err := r.ReadAt(buf, entLBA*lbs); err != nil {
			return nil, fmt.Errorf("reading GPT entries: %w", err)
		}
		parts := make([]GPTPartition, count)
		for i := range parts {
			e := buf[i*size : (i+1)*size]
			if allZero(e[:16]) { // unused entry: no type GUID
				continue
			}
			u16 := make([]uint16, 36)
			for j := range u16 {
				u16[j] = binary.LittleEndian.Uint16(e[56+2*j:])
			}
			name := utf16.Decode(u16)
			if k := indexRune(name, 0); k >= 0 {
				name = name[:k]
			}
			parts[i] = GPTPartition{Name: string(name), UUID: formatUUID(e[16:32], true)}
		}
		return parts, nil
	}
	return nil, fmt.Errorf("no GPT: %w", errdefs.ErrNotFound)
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func indexRune(rs []rune, r rune) int {
	for i, c := range rs {
		if c == r {
			return i
		}
	}
	return -1
}

// formatUUID formats 16 bytes as 8-4-4-4-12 hex; mixed is the GUID byte order
// of GPT (the first three fields little-endian).
func formatUUID(b []byte, mixed bool) string {
	u := append([]byte(nil), b[:16]...)
	if mixed {
		u[0], u[1], u[2], u[3] = u[3], u[2], u[1], u[0]
		u[4], u[5] = u[5], u[4]
		u[6], u[7] = u[7], u[6]
	}
	return fmt.Sprintf("%x-%x-%x-%x-%x", u[0:4], u[4:6], u[6:8], u[8:10], u[10:16])
}
