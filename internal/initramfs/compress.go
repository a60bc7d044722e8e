package initramfs

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/strata-os/strata/internal/errdefs"
)

// Compression says how an archive is compressed.
type Compression string

const (
	// None leaves the archive uncompressed.
	None Compression = "none"
	// Gzip compresses it with gzip (an empty header: no name, no mtime).
	Gzip Compression = "gzip"
	// Zstd compresses it as one zstd frame with a window of ZstdWindow, a
	// size the kernel's initramfs decoder accepts (docs/boot.md).
	Zstd Compression = "zstd"
)

// Compressions are the accepted values, for flags and messages.
var Compressions = []Compression{None, Gzip, Zstd}

// ZstdWindow is the zstd window size: the kernel's decoder allocates a
// buffer of the frame's window size before it unpacks the initramfs, so the
// window is bounded (8 MiB, the default of the reference zstd's level 19)
// rather than the size of the archive.
const ZstdWindow = 8 << 20

// ParseCompression parses a compression name; "" is None.
func ParseCompression(s string) (Compression, error) {
	switch c := Compression(s); c {
	case "":
		return None, nil
	case None, Gzip, Zstd:
		return c, nil
	}
	return "", fmt.Errorf("compression %q: want one of %v: %w", s, Compressions, errdefs.ErrInvalid)
}

// nopCloser is an io.WriteCloser whose Close does nothing.
type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// compressor returns a writer that compresses into w as c says; closing it
// ends the compressed stream (it does not close w).
func compressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case "", None:
		return nopCloser{w}, nil
	case Gzip:
		return gzip.NewWriter(w), nil
	case Zstd:
		// One goroutine: the same input gives the same bytes on every
		// machine. No checksum: the kernel would verify it at every boot,
		// as slowly as it decompresses under emulation.
		return zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.SpeedBestCompression),
			zstd.WithWindowSize(ZstdWindow),
			zstd.WithEncoderConcurrency(1),
			zstd.WithEncoderCRC(false),
		)
	}
	return nil, fmt.Errorf("initramfs compression %q: %w", c, errdefs.ErrInvalid)
}

// Decompress returns the cpio archive of an initramfs, decompressing it if
// it starts with a gzip or zstd magic number; maxSize bounds the result.
func Decompress(data []byte, maxSize int64) ([]byte, error) {
	var r io.Reader
	switch {
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
		r = zr
	case bytes.HasPrefix(data, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(bytes.NewReader(data), zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(ZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("initramfs: %w", err)
		}
		defer zr.Close()
		r = zr
	default:
		return data, nil
	}
	out, err := io.ReadAll(io.LimitReader(r, maxSize+1))
	if err != nil {
		return nil, fmt.Errorf("decompressing initramfs: %w", err)
	}
	if int64(len(out)) > maxSize {
		return nil, fmt.Errorf("initramfs decompresses to more than %d bytes: %w", maxSize, errdefs.ErrInvalid)
	}
	return out, nil
}
