package repo

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// The commit benchmarks run over STRATA_BENCH_TREE when it is set (e.g.
// .cache/corpus/debian from scripts/corpus), else over a generated tree of
// 2,000 small files (text-like, compressible, 5% duplicates) and two 4 MiB
// files. Cold: a fresh repository each iteration; warm: the same tree again
// into a repository that has every object. Durability syncs are off: syncfs
// measures the whole filesystem's dirty data, not the commit.
//
//	go test -run '^$' -bench BenchmarkCommit -benchtime 3x ./internal/repo
//	STRATA_BENCH_TREE=$PWD/.cache/corpus/debian go test -run '^$' -bench BenchmarkCommit -benchtime 1x ./internal/repo

func cmBenchTree(b *testing.B) (string, int64) {
	if p := os.Getenv("STRATA_BENCH_TREE"); p != "" {
		var size int64
		filepath.Walk(p, func(_ string, fi os.FileInfo, err error) error {
			if err == nil && fi.Mode().IsRegular() {
				size += fi.Size()
			}
			return nil
		})
		return p, size
	}
	dir := b.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	words := []string{"usr", "lib", "share", "config", "the", "and", "value", "error", "return", "static", "\n", "{", "}"}
	var size int64
	var prev []byte
	for i := range 2000 {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%40))
		os.MkdirAll(sub, 0o755)
		var data []byte
		if prev != nil && i%20 == 0 {
			data = prev
		} else {
			for n := 512 + rng.IntN(16<<10); len(data) < n; {
				data = append(data, words[rng.IntN(len(words))]...)
				data = append(data, ' ')
			}
		}
		prev = data
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
		size += int64(len(data))
	}
	for i := range 2 {
		data := make([]byte, 4<<20)
		for j := range data {
			data[j] = byte(rng.IntN(16))
		}
		os.WriteFile(filepath.Join(dir, fmt.Sprintf("big%d", i)), data, 0o644)
		size += int64(len(data))
	}
	return dir, size
}

func BenchmarkCommit(b *testing.B) {
	tree, size := cmBenchTree(b)
	for _, mode := range []Mode{ModeArchive, ModeBareUser} {
		b.Run(string(mode)+"/cold", func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				b.StopTimer()
				r, err := Init(filepath.Join(b.TempDir(), "repo"), mode)
				if err != nil {
					b.Fatal(err)
				}
				r.SetFsync(false)
				b.StartTimer()
				if _, _, err := CommitTree(context.Background(), r, DirSource(tree), CommitOptions{Branch: "bench", Timestamp: time.Unix(1, 0)}); err != nil {
					b.Fatal(err)
				}
				r.Close()
			}
		})
		b.Run(string(mode)+"/warm", func(b *testing.B) {
			b.SetBytes(size)
			r, err := Init(filepath.Join(b.TempDir(), "repo"), mode)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			r.SetFsync(false)
			if _, _, err := CommitTree(context.Background(), r, DirSource(tree), CommitOptions{Branch: "bench", Timestamp: time.Unix(1, 0)}); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if _, _, err := CommitTree(context.Background(), r, DirSource(tree), CommitOptions{Branch: "bench", Timestamp: time.Unix(1, 0)}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
