package vm

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/ulikunitz/xz/lzma"
)

// ExtractVmlinux returns the uncompressed ELF kernel inside an xz-compressed bzImage, like the
// kernel's torvalds/linux:scripts/extract-vmlinux: QEMU boots it through the PVH entry point, which skips the
// in-guest decompression (about 12 s under TCG, docs/vm.md).
//
// The kernel's xz stream uses the x86 BCJ filter before LZMA2 (torvalds/linux:scripts/xz_wrap.sh), which
// github.com/ulikunitz/xz does not decode, so the block is parsed here, its LZMA2 data is
// decoded with ulikunitz/xz/lzma, the BCJ filter is undone, and the block's check is verified.
func ExtractVmlinux(bzImage []byte) ([]byte, error) {
	magic := []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	var errs []error
	for off := 0; ; {
		i := bytes.Index(bzImage[off:], magic)
		if i < 0 {
			break
		}
		off += i
		out, err := decodeXZBlock(bzImage[off:])
		if err == nil && bytes.HasPrefix(out, []byte("\x7fELF")) {
			return out, nil
		}
		if err == nil {
			err = errors.New("not an ELF file")
		}
		errs = append(errs, fmt.Errorf("xz stream at offset %d: %w", off, err))
		off++
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("extracting vmlinux: no xz stream in the kernel image: %w", errdefs.ErrUnsupported)
	}
	return nil, fmt.Errorf("extracting vmlinux: %w: %w", errors.Join(errs...), errdefs.ErrCorrupt)
}

// readVarint reads an xz multibyte integer.
func readVarint(r *bytes.Reader) (uint64, error) {
	var v uint64
	for i := 0; i < 9; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errors.New("xz integer too long")
}

// decodeXZBlock decodes the first block of the xz stream at the start of data (the kernel's
// stream has exactly one).
func decodeXZBlock(data []byte) ([]byte, error) {
	if len(data) < 12+8 {
		return nil, io.ErrUnexpectedEOF
	}
	flags := data[6:8]
	if crc32.ChecksumIEEE(flags) != binary.LittleEndian.Uint32(data[8:12]) {
		return nil, errors.New("bad stream header checksum")
	}
	checkType := flags[1] & 0x0f
	block := data[12:]
	hdrSize := (int(block[0]) + 1) * 4
	if block[0] == 0 || len(block) < hdrSize {
		return nil, errors.New("no block")
	}
	hdr := block[:hdrSize]
	if crc32.ChecksumIEEE(hdr[:hdrSize-4]) != binary.LittleEndian.Uint32(hdr[hdrSize-4:]) {
		return nil, errors.New("bad block header checksum")
	}
	r := bytes.NewReader(hdr[1 : hdrSize-4])
	bflags, _ := r.ReadByte()
	nFilters := int(bflags&3) + 1
	for _, present := range []bool{bflags&0x40 != 0, bflags&0x80 != 0} { // compressed, uncompressed sizes
		if present {
			if _, err := readVarint(r); err != nil {
				return nil, fmt.Errorf("block header: %w", err)
			}
		}
	}
	bcj, dictCap := false, int64(-1)
	for i := 0; i < nFilters; i++ {
		id, err := readVarint(r)
		if err != nil {
			return nil, fmt.Errorf("block header: %w", err)
		}
		size, err := readVarint(r)
		if err != nil || size > uint64(r.Len()) {
			return nil, errors.New("block header: bad filter properties")
		}
		props := make([]byte, size)
		r.Read(props)
		switch {
		case id == 0x04 && i < nFilters-1 && (size == 0 || binary.LittleEndian.Uint32(append(props, 0, 0, 0, 0)) == 0):
			bcj = true // x86 BCJ with start offset 0
		case id == 0x21 && i == nFilters-1 && size == 1:
			if dictCap, err = lzma.DecodeDictCap(props[0]); err != nil {
				return nil, fmt.Errorf("LZMA2 properties: %w", err)
			}
		default:
			return nil, fmt.Errorf("unsupported filter %#x (want [x86 BCJ,] LZMA2)", id)
		}
	}
	if dictCap < 0 {
		return nil, errors.New("no LZMA2 filter")
	}
	body := bytes.NewReader(block[hdrSize:])
	lr, err := lzma.Reader2Config{DictCap: int(dictCap)}.NewReader2(body)
	if err != nil {
		return nil, fmt.Errorf("LZMA2: %w", err)
	}
	out, err := io.ReadAll(lr)
	if err != nil {
		return nil, fmt.Errorf("LZMA2: %w", err)
	}
	if bcj {
		bcjX86Decode(out)
	}
	// Verify the block's check over the uncompressed data; it also proves the BCJ decoding.
	used := len(block) - hdrSize - body.Len()
	pad := (4 - used%4) % 4
	rest := block[hdrSize+used+pad:]
	var h hash.Hash
	switch checkType {
	case 0x01:
		h = crc32.NewIEEE()
	case 0x04:
		h = crc64.New(crc64.MakeTable(crc64.ECMA))
	case 0x0a:
		h = sha256.New()
	}
	if h != nil {
		h.Write(out)
		sum := h.Sum(nil)
		if checkType != 0x0a { // CRCs are stored little-endian
			for i, j := 0, len(sum)-1; i < j; i, j = i+1, j-1 {
				sum[i], sum[j] = sum[j], sum[i]
			}
		}
		if len(rest) < len(sum) || !bytes.Equal(rest[:len(sum)], sum) {
			return nil, errors.New("block check mismatch")
		}
	}
	return out, nil
}

// bcjX86Decode undoes the x86 branch converter in place (the whole stream at once, start
// offset 0), as xz-embedded's bcj_x86 does: CALL/JMP rel32 targets were made absolute by the
// encoder and are made relative again.
func bcjX86Decode(buf []byte) {
	maskToAllowed := [8]bool{true, true, true, false, true, false, false, false}
	maskToBitNum := [8]uint32{0, 1, 2, 2, 3, 3, 3, 3}
	testMSByte := func(b byte) bool { return b == 0x00 || b == 0xff }
	if len(buf) <= 4 {
		return
	}
	size := len(buf) - 4
	prevPos := -1
	var prevMask uint32
	for i := 0; i < size; i++ {
		if buf[i]&0xfe != 0xe8 {
			continue
		}
		d := i - prevPos
		if d > 3 {
			prevMask = 0
		} else {
			prevMask = (prevMask << (d - 1)) & 7
			if prevMask != 0 {
				b := buf[i+4-int(maskToBitNum[prevMask])]
				if !maskToAllowed[prevMask] || testMSByte(b) {
					prevPos = i
					prevMask = prevMask<<1 | 1
					continue
				}
			}
		}
		prevPos = i
		if !testMSByte(buf[i+4]) {
			prevMask = prevMask<<1 | 1
			continue
		}
		src := binary.LittleEndian.Uint32(buf[i+1:])
		var dest uint32
		for {
			dest = src - uint32(i+5)
			if prevMask == 0 {
				break
			}
			j := maskToBitNum[prevMask] * 8
			if !testMSByte(byte(dest >> (24 - j))) {
				break
			}
			src = dest ^ (1<<(32-j) - 1)
		}
		dest &= 0x01ffffff
		dest |= 0 - (dest & 0x01000000)
		binary.LittleEndian.PutUint32(buf[i+1:], dest)
		i += 4
	}
}
