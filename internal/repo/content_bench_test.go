package repo

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/strata-os/strata/internal/ostree"
)

// BenchmarkWriteContentVerified stores 1,000 verified 4 KiB content
// objects per iteration, the pull's path into a repository (want set):
// the cost of writing 0600, verifying, then applying the metadata.
//
//	go test -run '^$' -bench BenchmarkWriteContentVerified -benchtime 20x ./internal/repo
func BenchmarkWriteContentVerified(b *testing.B) {
	const n = 1000
	fi := ostree.FileInfo{Mode: ostree.ModeReg | 0o755}
	payloads := make([][]byte, n)
	sums := make([]ostree.Checksum, n)
	for i := range payloads {
		payloads[i] = bytes.Repeat([]byte(fmt.Sprintf("object %d\n", i)), 4096/10)
		h := newHashWriter(ostree.FileHeader(fi))
		h.Write(payloads[i])
		sums[i] = h.sum()
	}
	for _, mode := range []Mode{ModeBareUserOnly, ModeArchive} {
		b.Run(string(mode), func(b *testing.B) {
			for i := range b.N {
				r, err := Init(filepath.Join(b.TempDir(), fmt.Sprint(i)), mode)
				if err != nil {
					b.Fatal(err)
				}
				r.SetFsync(false)
				txn, err := r.Begin()
				if err != nil {
					b.Fatal(err)
				}
				for j, p := range payloads {
					if _, err := txn.WriteContent(fi, bytes.NewReader(p), int64(len(p)), &sums[j]); err != nil {
						b.Fatal(err)
					}
				}
				txn.Abort()
				r.Close()
			}
		})
	}
}

// BenchmarkBegin measures starting and aborting a transaction: the
// staging directory is created and locked under a flock of tmp/.
func BenchmarkBegin(b *testing.B) {
	r, err := Init(filepath.Join(b.TempDir(), "repo"), ModeArchive)
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	for range b.N {
		txn, err := r.Begin()
		if err != nil {
			b.Fatal(err)
		}
		txn.Abort()
	}
}
