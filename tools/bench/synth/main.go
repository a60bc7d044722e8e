// Command synth writes the deterministic "synthetic" benchmark corpus (scripts/corpus calls it):
// the same bytes, modes, links and layout on every machine and every run, so benchmark results
// on it are comparable across machines.
//
// Layout under -out:
//
//	small/dNN/dNN/fNNNN[.sh|.txt|.bin]  20,000 small files (0 B–64 KiB, mostly a few KiB),
//	                                    text and binary, 5% exact duplicates, some 0755/0600
//	big/randomN.bin                     three 50 MiB incompressible files
//	links/                              symlinks (relative, absolute, dangling, to dirs) and hardlinks
//	empty/                              empty directories
//
// All data comes from a PCG generator with a fixed seed; mtimes are set to a fixed instant.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"
)

const (
	topDirs     = 20
	subDirs     = 25
	filesPerDir = 40 // topDirs*subDirs*filesPerDir = 20,000 small files
	bigFiles    = 3
	bigSize     = 50 << 20
	symlinks    = 500
	hardlinks   = 20
	emptyDirs   = 10
)

// fixedTime is the mtime of every entry; OSTree ignores mtimes but a fixed tree is easier to diff.
var fixedTime = time.Unix(1700000000, 0)

var words = []string{
	"ostree", "commit", "checksum", "deployment", "sysroot", "refs", "objects", "dirtree",
	"dirmeta", "archive", "bare", "summary", "static", "delta", "boot", "loader", "entries",
	"kernel", "initramfs", "usr", "etc", "var", "merge", "origin", "stateroot", "rollback",
}

func main() {
	out := flag.String("out", "", "directory to create (must not exist)")
	flag.Parse()
	if *out == "" || flag.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "usage: synth -out DIR")
		os.Exit(2)
	}
	if err := generate(*out); err != nil {
		fmt.Fprintln(os.Stderr, "synth:", err)
		os.Exit(1)
	}
}

func generate(root string) error {
	if err := os.Mkdir(root, 0o755); err != nil {
		return err
	}
	rng := rand.New(rand.NewPCG(0x535452415441, 1)) // "STRATA"
	var small []string                              // relative paths of the small files, for links
	var contents [][]byte
	for t := range topDirs {
		for s := range subDirs {
			dir := filepath.Join("small", fmt.Sprintf("d%02d", t), fmt.Sprintf("d%02d", s))
			if err := os.MkdirAll(filepath.Join(root, dir), 0o755); err != nil {
				return err
			}
			for f := range filesPerDir {
				n := (t*subDirs+s)*filesPerDir + f
				data, ext := smallContent(rng, contents)
				mode := os.FileMode(0o644)
				switch {
				case ext == ".sh" || n%17 == 0:
					mode = 0o755
				case n%29 == 0:
					mode = 0o600
				}
				rel := filepath.Join(dir, fmt.Sprintf("f%05d%s", n, ext))
				if err := writeFile(filepath.Join(root, rel), bytes.NewReader(data), mode); err != nil {
					return err
				}
				small = append(small, rel)
				contents = append(contents, data)
			}
		}
	}

	if err := os.Mkdir(filepath.Join(root, "big"), 0o755); err != nil {
		return err
	}
	for i := range bigFiles {
		src := rand.New(rand.NewPCG(uint64(i)+1, 0xB16))
		r := io.LimitReader(rngReader{src}, bigSize)
		if err := writeFile(filepath.Join(root, "big", fmt.Sprintf("random%d.bin", i)), r, 0o644); err != nil {
			return err
		}
	}

	if err := makeLinks(root, rng, small); err != nil {
		return err
	}
	for i := range emptyDirs {
		if err := os.MkdirAll(filepath.Join(root, "empty", fmt.Sprintf("e%d", i)), 0o755); err != nil {
			return err
		}
	}
	return fixTimes(root)
}

// smallContent returns one small file's bytes and name suffix. Sizes are log-uniform-ish:
// most files are a few KiB, some empty, a few up to 64 KiB; 5% repeat an earlier file.
func smallContent(rng *rand.Rand, earlier [][]byte) ([]byte, string) {
	if len(earlier) > 0 && rng.IntN(20) == 0 {
		return earlier[rng.IntN(len(earlier))], ".dup"
	}
	var size int
	switch r := rng.IntN(100); {
	case r < 3:
		size = 0
	case r < 60:
		size = 64 + rng.IntN(2048)
	case r < 95:
		size = 2048 + rng.IntN(14336)
	default:
		size = 16384 + rng.IntN(49152)
	}
	switch rng.IntN(4) {
	case 0: // incompressible
		b := make([]byte, size)
		fillRandom(rng, b)
		return b, ".bin"
	case 1:
		return textContent(rng, size, "#!/bin/sh\n"), ".sh"
	default:
		return textContent(rng, size, ""), ".txt"
	}
}

func textContent(rng *rand.Rand, size int, prefix string) []byte {
	var b bytes.Buffer
	b.Grow(size + 16)
	b.WriteString(prefix)
	for b.Len() < size {
		b.WriteString(words[rng.IntN(len(words))])
		if rng.IntN(12) == 0 {
			b.WriteByte('\n')
		} else {
			b.WriteByte(' ')
		}
	}
	return b.Bytes()[:size]
}

func fillRandom(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8 && i+j < len(b); j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
}

// rngReader is an endless io.Reader of generator output.
type rngReader struct{ rng *rand.Rand }

func (r rngReader) Read(p []byte) (int, error) {
	fillRandom(r.rng, p)
	return len(p), nil
}

func makeLinks(root string, rng *rand.Rand, small []string) error {
	dir := filepath.Join(root, "links")
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for i := range symlinks {
		var target string
		switch i % 5 {
		case 0, 1, 2: // relative link to a file
			target = filepath.Join("..", small[rng.IntN(len(small))])
		case 3: // relative link to a directory
			target = filepath.Join("..", filepath.Dir(small[rng.IntN(len(small))]))
		default: // dangling, sometimes absolute
			if i%2 == 0 {
				target = fmt.Sprintf("/nonexistent/target-%d", i)
			} else {
				target = fmt.Sprintf("missing-%d", i)
			}
		}
		if err := os.Symlink(target, filepath.Join(dir, fmt.Sprintf("l%03d", i))); err != nil {
			return err
		}
	}
	for i := range hardlinks {
		src := filepath.Join(root, small[rng.IntN(len(small))])
		if err := os.Link(src, filepath.Join(dir, fmt.Sprintf("h%02d", i))); err != nil {
			return err
		}
	}
	return nil
}

func writeFile(path string, r io.Reader, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	// Modes are exact whatever the umask.
	return os.Chmod(path, mode)
}

// fixTimes sets every entry's mtime (symlinks excluded: Go has no lchtimes) to fixedTime,
// deepest first so that setting a directory's time is not undone by its children.
func fixTimes(root string) error {
	var dirs []string
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			dirs = append(dirs, path)
		case d.Type().IsRegular():
			return os.Chtimes(path, fixedTime, fixedTime)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Chtimes(dirs[i], fixedTime, fixedTime); err != nil {
			return err
		}
	}
	return nil
}
