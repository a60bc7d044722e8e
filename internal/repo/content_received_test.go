package repo

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
)

// received is a content object as a server sends it: its archived form and what it inflates to.
type received struct {
	fi      ostree.FileInfo
	content []byte
	header  []byte // framed
	stream  []byte // raw deflate
	sum     ostree.Checksum
}

func newReceived(t *testing.T, content string, level int) received {
	t.Helper()
	fi := ostree.FileInfo{Mode: ostree.ModeReg | 0o755}
	var z bytes.Buffer
	fw, err := flate.NewWriter(&z, level)
	if err != nil {
		t.Fatal(err)
	}
	fw.Write([]byte(content))
	if err := fw.Close(); err != nil {
		t.Fatal(err)
	}
	sum, err := ostree.ContentChecksum(fi, strings.NewReader(content))
	if err != nil {
		t.Fatal(err)
	}
	return received{fi: fi, content: []byte(content), header: ostree.ArchiveHeader(fi, uint64(len(content))), stream: z.Bytes(), sum: sum}
}

// receive spools header and stream as a pull does and stores the object.
func receive(t *testing.T, txn *Txn, o received, header []byte, want ostree.Checksum) error {
	t.Helper()
	spool, err := txn.NewSpool()
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Discard()
	if _, err := spool.Write(append(append([]byte(nil), header...), o.stream...)); err != nil {
		t.Fatal(err)
	}
	_, err = txn.WriteReceived(o.fi, bytes.NewReader(o.content), int64(len(o.content)), want, spool, int64(len(header)))
	return err
}

// TestWriteReceivedKeepsTheStream: an archive object received with strata's header is stored
// byte for byte as received (a stream of another deflate level than the repository's), and one
// with another header gets strata's header before the same stream.
func TestWriteReceivedKeepsTheStream(t *testing.T) {
	t.Parallel()
	r, txn := beginTxn(t, ModeArchive)
	kept := newReceived(t, strings.Repeat("kept as received\n", 500), flate.BestCompression)
	if err := receive(t, txn, kept, kept.header, kept.sum); err != nil {
		t.Fatalf("WriteReceived(strata's header) = %v", err)
	}
	// The same 8-byte frame with a nonzero pad: another encoding of the same header.
	other := newReceived(t, strings.Repeat("copied after strata's header\n", 500), flate.BestSpeed)
	odd := append([]byte(nil), other.header...)
	odd[7] = 1
	if err := receive(t, txn, other, odd, other.sum); err != nil {
		t.Fatalf("WriteReceived(another header) = %v", err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, o := range []received{kept, other} {
		got, err := os.ReadFile(r.ObjectPath(ostree.ObjectName{Checksum: o.sum, Type: ostree.ObjectFile}))
		if err != nil {
			t.Fatal(err)
		}
		if want := append(append([]byte(nil), o.header...), o.stream...); !bytes.Equal(got, want) {
			t.Errorf("object %s: %d bytes stored, want strata's header and the received stream (%d bytes)", o.sum, len(got), len(want))
		}
		c, err := r.OpenContent(o.sum)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(c)
		c.Close()
		if err != nil || !bytes.Equal(b, o.content) {
			t.Errorf("object %s reads back %d bytes, %v; want its %d bytes", o.sum, len(b), err, len(o.content))
		}
	}
	requireFsckClean(t, r)
}

// TestWriteReceivedRefusesOtherContent: content that does not hash to the name asked for is
// refused as corrupt and leaves nothing staged, spool included.
func TestWriteReceivedRefusesOtherContent(t *testing.T) {
	t.Parallel()
	r, txn := beginTxn(t, ModeArchive)
	o := newReceived(t, "the real content\n", flate.DefaultCompression)
	wrong := newReceived(t, "other content\n", flate.DefaultCompression)
	err := receive(t, txn, o, o.header, wrong.sum)
	if !errors.Is(err, errdefs.ErrCorrupt) || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("WriteReceived(content of another name) = %v, want a corruption error", err)
	}
	for _, s := range []ostree.Checksum{o.sum, wrong.sum} {
		if ok, err := txn.HasObject(ostree.ObjectName{Checksum: s, Type: ostree.ObjectFile}); ok || err != nil {
			t.Errorf("HasObject(%s) after the refusal = %v, %v; want false", s, ok, err)
		}
	}
	if left, err := os.ReadDir(txn.dir); err != nil || len(left) != 0 {
		t.Errorf("staging directory after the refusal: %v, %v; want it empty", left, err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	requireFsckClean(t, r)
}

// TestNewSpoolOnlyArchive: the other modes store objects in another form.
func TestNewSpoolOnlyArchive(t *testing.T) {
	t.Parallel()
	_, txn := beginTxn(t, ModeBareUser)
	if _, err := txn.NewSpool(); !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("NewSpool() in a bare-user repository = %v, want ErrFailedPrecondition", err)
	}
}
