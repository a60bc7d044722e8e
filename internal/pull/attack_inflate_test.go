package pull_test

import (
	"bytes"
	"compress/flate"
	"context"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/pull"
	"github.com/strata-os/strata/internal/pull/pulltest"
	"github.com/strata-os/strata/internal/repo"
)

// zeroBomb is a well-formed .filez declaring size bytes of zeros: about
// size/1000 bytes on the wire.
func zeroBomb(t *testing.T, size int64) []byte {
	t.Helper()
	var buf bytes.Buffer
	buf.Write(ostree.ArchiveHeader(ostree.FileInfo{Mode: ostree.ModeReg | 0o644}, uint64(size)))
	zw, err := flate.NewWriter(&buf, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyN(zw, zeroReader{}, size); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	return buf.Bytes()
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// writtenBytes is this process's wchar: the bytes it has passed to write
// system calls, files and sockets alike.
func writtenBytes(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no wchar in /proc/self/io")
	return 0
}

// TestAttackInflateBomb serves, for an object of a commit that does not
// list its sizes, a 256 MiB run of zeros compressed to about 260 KB: the
// client must stop at the inflate-ratio bound, having written a few MiB,
// not 256. It does not run in parallel: it counts the bytes the whole
// process writes.
func TestAttackInflateBomb(t *testing.T) {
	const declared = 256 << 20
	bomb := zeroBomb(t, declared)
	for _, mode := range []repo.Mode{repo.ModeArchive, repo.ModeBareUser} {
		t.Run(string(mode), func(t *testing.T) {
			e := newAttackEnv(t, mode, false)
			n := e.next.FileObject("usr/bin/tool")
			e.srv.Handle(pulltest.Object(n), pulltest.Body(bomb))
			before := writtenBytes(t)
			_, err := pull.Pull(context.Background(), e.client, e.options())
			written := writtenBytes(t) - before
			checkErr(t, err, errdefs.ErrCorrupt, n.Checksum.String(), "400:1")
			t.Logf("a %d-byte body declaring %d MiB made the client write %.1f MiB", len(bomb), declared>>20, float64(written)/float64(mib))
			if written > 8*mib {
				t.Errorf("the client wrote %d MiB for a %d KiB body, want at most 8 MiB", written>>20, len(bomb)>>10)
			}
			if tries := e.srv.Count(pulltest.ObjectPath(n)); tries != 1 {
				t.Errorf("requests for %s = %d, want 1", n, tries)
			}
			checkAftermath(t, e, n, ostree.Checksum{})
			checkHonestPull(t, e, e.options())
		})
	}
}
