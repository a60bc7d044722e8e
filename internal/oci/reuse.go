package oci

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"runtime"
	"sync/atomic"

	"github.com/strata-os/strata/internal/ostree"
	"golang.org/x/sync/errgroup"
)

// recordLocal writes the layer refs of the base layers [0, end) that have none when the
// base commit is in the repository already (pulled as objects, or pushed from here), so
// that a later image sharing those layers does not download them. Nothing of the registry
// is trusted for it: the commit is encapsulated again as push does it (the tar streams
// only, hashed and not compressed), and a layer whose diff ID equals the one the image
// gives for that position is that layer; its tree is built from the stream by the same
// code that imports a downloaded layer, and kept under its layer ref. Layers that do not
// match (an image of this commit made by another tool, or chunked otherwise) get no ref.
// It returns the number of refs written.
func (imp *importer) recordLocal(ctx context.Context, commit ostree.Checksum, end int) (int, error) {
	r := imp.txn.Repo()
	var missing []int
	for i := range end {
		if !hasRef(r, LayerRefPrefix+imp.diffIDs[i].Hex) {
			missing = append(missing, i)
		}
	}
	if len(missing) == 0 {
		return 0, nil
	}
	lay, err := readLayout(ctx, r, commit)
	if err != nil {
		return 0, err
	}
	// The image has the chunks of push's default bound, or of a bound given to push: with
	// as many layers as the image has, planChunks splits the same way unless grouping
	// the small packages gave fewer layers than the bound.
	var chunks []*chunk
	for _, max := range []int{DefaultMaxLayers, end} {
		if c := lay.chunks(max); max >= 3 && len(c)+1 == end {
			chunks = c
			break
		}
	}
	if chunks == nil {
		return 0, nil
	}
	files := make(map[string]*entry, len(lay.files))
	for i := range lay.entries {
		if e := &lay.entries[i]; !e.dir {
			files[e.path] = e
		}
	}
	// A file whose header is the commit's is the commit's content object: the stream
	// copied that object's content.
	known := func(p string, fi ostree.FileInfo) (ostree.Checksum, bool) {
		e := files[p]
		if e == nil || !bytes.Equal(ostree.FileHeader(fi), ostree.FileHeader(e.fi)) {
			return ostree.Checksum{}, false
		}
		return e.sum, true
	}
	var n atomic.Int32
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range missing {
		if i >= len(chunks) {
			continue // the commit's layer carries objects: it never has a ref
		}
		g.Go(func() error {
			kept, err := imp.recordChunk(gctx, lay, chunks[i], i, known)
			if kept {
				n.Add(1)
			}
			return err
		})
	}
	err = g.Wait()
	return int(n.Load()), err
}

// recordChunk builds layer i from chunk ch of the commit and keeps it under its layer ref
// when its diff ID is the image's.
func (imp *importer) recordChunk(ctx context.Context, lay *commitLayout, ch *chunk, i int,
	known func(string, ostree.FileInfo) (ostree.Checksum, bool)) (bool, error) {
	lt, err := newTree(imp.txn)
	if err != nil {
		return false, err
	}
	lower, err := newTree(imp.txn)
	if err != nil {
		return false, err
	}
	a := &applier{t: lt, lower: lower, maxSize: imp.maxSize, carried: map[string][]byte{}, known: known}
	pr, pw := io.Pipe()
	h := sha256.New()
	done := make(chan error, 1)
	go func() {
		tw := tar.NewWriter(io.MultiWriter(h, pw))
		err := writeChunk(ctx, imp.txn.Repo(), tw, lay.entries, ch, i == 0)
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
		done <- err
	}()
	err = a.apply(pr)
	if err == nil {
		_, err = io.Copy(io.Discard, pr) // the tar's end blocks
	}
	pr.CloseWithError(io.ErrClosedPipe) // a writer still writing stops
	if werr := <-done; err == nil {
		err = werr
	}
	if err != nil {
		return false, fmt.Errorf("layer %d of commit %s: %w", i, lay.commit, err)
	}
	if hex.EncodeToString(h.Sum(nil)) != imp.diffIDs[i].Hex {
		return false, nil
	}
	return imp.keepLayer(i, lt, a)
}
