package xzenc

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math"
)

// Options are the encoder's settings. The zero value is xz's preset 6.
type Options struct {
	// DictSize is the largest match distance, 8 MiB when zero; at most
	// 1.5 GiB. The stream declares min(DictSize, len(src)) rounded up to
	// a size the header can state, so that decoders of small inputs
	// allocate little.
	DictSize int
	// NiceLen is the match length the parser takes without looking for
	// anything better, 64 when zero; 8 to 273.
	NiceLen int
	// Depth bounds the tree nodes the match finder visits per position,
	// 16 + NiceLen/2 when zero.
	Depth int
}

const (
	defaultDict = 8 << 20
	maxDict     = 3 << 29
	checkCRC64  = 0x04
	filterLZMA2 = 0x21
)

var (
	headerMagic = []byte{0xFD, '7', 'z', 'X', 'Z', 0x00}
	footerMagic = []byte{'Y', 'Z'}
	crc64Table  = crc64.MakeTable(crc64.ECMA)
)

// Encode writes src to dst as one .xz stream: a block of LZMA2 data with
// a CRC64 check. Besides src and the output (built whole, then written)
// it holds the match finder (bt4, about 8 bytes per byte of
// min(DictSize, len(src)) plus its hash table: 80 MiB at most for the
// default dictionary, mapped outside the Go heap and unmapped on return)
// and 300 KiB of parser state.
func Encode(dst io.Writer, src []byte, opts *Options) error {
	var o Options
	if opts != nil {
		o = *opts
	}
	if o.DictSize == 0 {
		o.DictSize = defaultDict
	}
	if o.NiceLen == 0 {
		o.NiceLen = 64
	}
	if o.Depth == 0 {
		o.Depth = 16 + o.NiceLen/2
	}
	switch {
	case o.DictSize < 4096 || o.DictSize > maxDict:
		return fmt.Errorf("xzenc: dictionary size %d out of range", o.DictSize)
	case o.NiceLen < 8 || o.NiceLen > maxMatch:
		return fmt.Errorf("xzenc: nice length %d out of range", o.NiceLen)
	case o.Depth < 1:
		return fmt.Errorf("xzenc: depth %d out of range", o.Depth)
	case uint64(len(src)) >= math.MaxUint32:
		return errors.New("xzenc: input of 4 GiB or more")
	}

	out := append([]byte(nil), headerMagic...)
	flags := []byte{0x00, checkCRC64}
	out = append(out, flags...)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(flags))

	var index []byte // the records of the index
	records := 0
	if len(src) > 0 {
		blockStart := len(out)
		out = appendBlockHeader(out, dictByte(min(o.DictSize, len(src))))
		headerLen := len(out) - blockStart
		mf, err := newBT4(src, o.DictSize, o.NiceLen, o.Depth)
		if err != nil {
			return err
		}
		e := &encoder{
			data:    src,
			niceLen: o.NiceLen,
			mf:      mf,
			opt:     make([]optNode, numOpts+1),
			lastPos: -1,
		}
		e.m.reset()
		dataStart := len(out)
		func() {
			defer mf.release()
			out = e.lzma2(out)
		}()
		unpadded := headerLen + len(out) - dataStart + 8
		for len(out)%4 != 0 {
			out = append(out, 0)
		}
		out = binary.LittleEndian.AppendUint64(out, crc64.Checksum(src, crc64Table))
		index = putUvarint(index, uint64(unpadded))
		index = putUvarint(index, uint64(len(src)))
		records = 1
	}

	indexStart := len(out)
	out = append(out, 0x00)
	out = putUvarint(out, uint64(records))
	out = append(out, index...)
	for (len(out)-indexStart)%4 != 0 {
		out = append(out, 0)
	}
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(out[indexStart:]))
	indexLen := len(out) - indexStart

	var foot [6]byte
	binary.LittleEndian.PutUint32(foot[:4], uint32(indexLen/4-1))
	copy(foot[4:], flags)
	out = binary.LittleEndian.AppendUint32(out, crc32.ChecksumIEEE(foot[:]))
	out = append(out, foot[:]...)
	out = append(out, footerMagic...)
	_, err := dst.Write(out)
	return err
}

// appendBlockHeader appends a block header naming one filter, LZMA2 with
// the given dictionary byte, and no sizes.
func appendBlockHeader(out []byte, dict byte) []byte {
	h := []byte{0, 0x00, filterLZMA2, 1, dict}
	for len(h)%4 != 0 {
		h = append(h, 0)
	}
	h[0] = byte((len(h)+4)/4 - 1)
	h = binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
	return append(out, h...)
}

// dictByte is the LZMA2 property byte of the smallest dictionary size of
// the form 2^n or 3*2^(n-1) (at least 4 KiB) not below size.
func dictByte(size int) byte {
	for b := 0; b < 40; b++ {
		if dictOf(b) >= size {
			return byte(b)
		}
	}
	return 40
}

func dictOf(b int) int {
	return (2 | b&1) << (b/2 + 11)
}
