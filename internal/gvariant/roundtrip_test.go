package gvariant_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/testutil"
)

// GVariant types of the serialized data in the test vectors
// (docs/formats/objects.md).
const (
	sigCommit       = "(a{sv}aya(say)sstayay)"
	sigDirTree      = "(a(say)a(sayay))"
	sigDirMeta      = "(uuua(ayay))"
	sigFileHeader   = "(uuuusa(ayay))"
	sigFilezHeader  = "(tuuuusa(ayay))"
	sigSummary      = "(a(s(taya{sv}))a{sv})"
	sigSuperblock   = "(a{sv}tayay" + sigCommit + "aya(uayttay)a(yaytt))"
	sigDeltaPart    = "(yay)"
	sigMetadataDict = "a{sv}"
)

// vector is one piece of GVariant data that ostree 2022.7 wrote.
type vector struct {
	name string // where it came from
	sig  string
	data []byte
}

// objectTypes maps loose-object suffixes to their types.
var objectTypes = map[string]string{
	".commit":           sigCommit,
	".dirtree":          sigDirTree,
	".dirmeta":          sigDirMeta,
	".commitmeta":       sigMetadataDict,
	".tombstone-commit": sigMetadataDict,
}

// loadVectors collects the GVariant data of the test vectors: metadata
// objects of every repository, file headers of .filez objects and of
// bare-user xattrs, summaries, their signatures, static deltas and their
// indexes, detached signatures, and the serialized_hex entries of
// vectors.json.
func loadVectors(t testing.TB) []vector {
	t.Helper()
	dir := testutil.Vectors(t)
	var out []vector
	add := func(name, sig string, data []byte) {
		out = append(out, vector{name: name, sig: sig, data: data})
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		ext := filepath.Ext(p)
		var sig string
		switch {
		case objectTypes[ext] != "":
			sig = objectTypes[ext]
		case ext == ".filez":
			sig = sigFilezHeader
		case ext == ".file" && strings.HasPrefix(rel, "repo-bare-user/"):
			meta, err := getxattr(p, "user.ostreemeta")
			if err != nil {
				return err
			}
			add(rel+" user.ostreemeta", sigDirMeta, meta)
			return nil
		case d.Name() == "summary":
			sig = sigSummary
		case d.Name() == "summary.sig", ext == ".index", strings.HasPrefix(rel, "signing/C1.commitmeta."):
			sig = sigMetadataDict
		case d.Name() == "superblock":
			sig = sigSuperblock
		case strings.Contains(rel, "/deltas/") && !strings.Contains(d.Name(), "."):
			sig = sigDeltaPart
		default:
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if ext == ".filez" {
			data, err = streamHeader(data)
			if err != nil {
				return err
			}
		}
		add(rel, sig, data)
		return nil
	})
	if err != nil {
		t.Fatalf("reading the test vectors: %v", err)
	}

	raw, err := os.ReadFile(filepath.Join(dir, "vectors.json"))
	if err != nil {
		t.Fatalf("reading vectors.json: %v", err)
	}
	var doc struct {
		Vectors []struct {
			Name          string  `json:"name"`
			Type          string  `json:"type"`
			SerializedHex *string `json:"serialized_hex"`
			CommitMetaHex *string `json:"commitmeta_hex"`
			FileHeaderHex *string `json:"file_header_hex"`
			FilezHex      *string `json:"filez_hex"`
		} `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parsing vectors.json: %v", err)
	}
	types := map[string]string{
		"commit":           sigCommit,
		"dirtree":          sigDirTree,
		"dirmeta":          sigDirMeta,
		"commitmeta":       sigMetadataDict,
		"tombstone-commit": sigMetadataDict,
	}
	decode := func(name, h string) []byte {
		b, err := hex.DecodeString(h)
		if err != nil {
			t.Fatalf("vectors.json %q: %v", name, err)
		}
		return b
	}
	for _, e := range doc.Vectors {
		name := "vectors.json " + e.Name
		if sig := types[e.Type]; sig != "" && e.SerializedHex != nil {
			add(name, sig, decode(name, *e.SerializedHex))
		}
		if e.CommitMetaHex != nil {
			add(name+" commitmeta", sigMetadataDict, decode(name, *e.CommitMetaHex))
		}
		if e.FileHeaderHex != nil {
			h, err := streamHeader(decode(name, *e.FileHeaderHex))
			if err != nil {
				t.Fatalf("%s file header: %v", name, err)
			}
			add(name+" file header", sigFileHeader, h)
		}
		if e.FilezHex != nil {
			h, err := streamHeader(decode(name, *e.FilezHex))
			if err != nil {
				t.Fatalf("%s filez header: %v", name, err)
			}
			add(name+" filez header", sigFilezHeader, h)
		}
	}
	return out
}

// streamHeader returns the header GVariant of a content stream or .filez
// object: BE32 length, 4 bytes of padding, header (docs/formats/objects.md).
func streamHeader(b []byte) ([]byte, error) {
	if len(b) < 8 {
		return nil, errors.New("content stream shorter than 8 bytes")
	}
	n := binary.BigEndian.Uint32(b)
	if uint64(n) > uint64(len(b)-8) {
		return nil, errors.New("content stream header length past the end")
	}
	return b[8 : 8+n], nil
}

func getxattr(path, name string) ([]byte, error) {
	buf := make([]byte, 4096)
	n, err := unix.Lgetxattr(path, name, buf)
	if err != nil {
		return nil, &os.PathError{Op: "getxattr " + name, Path: path, Err: err}
	}
	return buf[:n], nil
}

// TestOstreeVectorsRoundTrip decodes all GVariant data ostree wrote in the
// test vectors and re-encodes it: the bytes must be identical, and in normal
// form.
func TestOstreeVectorsRoundTrip(t *testing.T) {
	t.Parallel()
	vectors := loadVectors(t)
	count := map[string]int{}
	for _, vec := range vectors {
		typ := gvariant.MustType(vec.sig)
		got, err := gvariant.Unmarshal(typ, vec.data)
		if err != nil {
			t.Errorf("Unmarshal(%s, %s) error: %v", vec.sig, vec.name, err)
			continue
		}
		again, err := gvariant.Marshal(typ, got)
		if err != nil {
			t.Errorf("Marshal(%s, Unmarshal(%s)) error: %v", vec.sig, vec.name, err)
			continue
		}
		if !bytes.Equal(again, vec.data) {
			t.Errorf("Marshal(%s, Unmarshal(%s)) =\n%x\nwant\n%x", vec.sig, vec.name, again, vec.data)
			continue
		}
		if !gvariant.IsNormal(typ, vec.data) {
			t.Errorf("IsNormal(%s, %s) = false, want true", vec.sig, vec.name)
		}
		count[vec.sig]++
	}
	// What the archive holds (README of the vectors); fewer means the walk
	// above missed something.
	wantMin := map[string]int{
		sigCommit:       11 + 3,
		sigDirTree:      46 + 4,
		sigDirMeta:      7 + 2 + 7,
		sigMetadataDict: 1 + 1 + 1 + 2 + 2 + 2,
		sigFilezHeader:  40 + 7,
		sigFileHeader:   8,
		sigSummary:      1,
		sigSuperblock:   2,
		sigDeltaPart:    2,
	}
	for sig, n := range wantMin {
		if count[sig] < n {
			t.Errorf("round-tripped %d vectors of type %s, want at least %d", count[sig], sig, n)
		}
	}
	t.Logf("round-tripped %d vectors: %v", len(vectors), count)
}
