package oci

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/gvariant"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
)

// Labels of an encapsulated image (bootc and ostree-ext; docs/oci.md).
const (
	LabelCommit      = "ostree.commit"
	LabelBootable    = "ostree.bootable"
	LabelBootc       = "containers.bootc"
	LabelLinux       = "ostree.linux"
	LabelVersion     = "org.opencontainers.image.version"
	LabelFinalDiffID = "ostree.final-diffid"
	// AnnotationComponents names the packages of a layer.
	AnnotationComponents = "ostree.components"
	// MetaManifestDigest records in a commit made by a pull the image it came from.
	MetaManifestDigest = "ostree.manifest-digest"
	// DerivedTmpfiles is where /var content of derived layers goes.
	DerivedTmpfiles = "usr/lib/tmpfiles.d/strata-oci-derived.conf"
)

// DefaultMaxLayerSize bounds the file content of one layer.
const DefaultMaxLayerSize = 64 << 30

// PullOptions tune Pull.
type PullOptions struct {
	RegistryOptions
	// Ref is the ref moved to the imported commit; "" moves none.
	Ref string
	// MaxLayerSize bounds the file content of one layer; 0 means DefaultMaxLayerSize.
	MaxLayerSize int64
	// SigstoreKeys, when set, require a sigstore signature by one of them (registry only);
	// an image without one is refused before any layer is fetched.
	SigstoreKeys []crypto.PublicKey

	// policySets are the key sets a containers policy requires (Follow): a signature by
	// one key of each.
	policySets [][]crypto.PublicKey

	// Progress, if set, learns the compressed bytes to download (SetTotal, before the
	// first layer is fetched) and follows them as they arrive (Add).
	Progress Progress
}

// Progress follows a download.
type Progress interface {
	SetTotal(n int64)
	Add(n int64)
}

// PullResult says what Pull imported.
type PullResult struct {
	Commit         ostree.Checksum // the image as a commit
	Base           ostree.Checksum // the commit of the layers up to ostree.final-diffid
	ManifestDigest string
	LayersFetched  int // layers downloaded and applied
	LayersSkipped  int // layers whose commit was already in the repository
	// LayersRecorded are the layer refs written from the base commit found in the
	// repository (encapsulated again, not downloaded).
	LayersRecorded int
	BytesToFetch   int64 // compressed bytes of the layers to download, known before the first
	BytesFetched   int64 // compressed bytes downloaded
}

// Pull imports the image at src into r (package doc).
func Pull(ctx context.Context, r *repo.Repo, src string, opts PullOptions) (*PullResult, error) {
	ref, err := ParseRef(src)
	if err != nil {
		return nil, err
	}
	img, cleanup, err := openImage(ctx, ref, opts.RegistryOptions)
	defer cleanup()
	if err != nil {
		return nil, err
	}
	if opts.MaxLayerSize == 0 {
		opts.MaxLayerSize = DefaultMaxLayerSize
	}
	if err := verifyPolicy(ctx, ref, img, opts); err != nil {
		return nil, err
	}
	res, err := importImage(ctx, r, ref, img, opts)
	if err != nil {
		return nil, fmt.Errorf("importing %s: %w", ref, err)
	}
	return res, nil
}

func importImage(ctx context.Context, r *repo.Repo, ref Ref, img v1.Image, opts PullOptions) (_ *PullResult, err error) {
	digest, err := img.Digest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", classify(err))
	}
	mf, err := img.Manifest()
	if err != nil {
		return nil, fmt.Errorf("reading manifest: %w", classify(err))
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", classify(err))
	}
	if got := sha256.Sum256(rawCfg); "sha256:"+hex.EncodeToString(got[:]) != mf.Config.Digest.String() {
		return nil, fmt.Errorf("config blob does not match digest %s: %w", mf.Config.Digest, errdefs.ErrInvalid)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return nil, fmt.Errorf("parsing config: %v: %w", err, errdefs.ErrInvalid)
	}
	diffIDs := cfg.RootFS.DiffIDs
	if len(diffIDs) != len(mf.Layers) {
		return nil, fmt.Errorf("config has %d diff IDs for %d layers: %w", len(diffIDs), len(mf.Layers), errdefs.ErrInvalid)
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("reading layers: %w", err)
	}
	labels := cfg.Config.Labels
	baseEnd := len(layers)
	if fd, ok := labels[LabelFinalDiffID]; ok {
		baseEnd = -1
		for i, d := range diffIDs {
			if d.String() == fd {
				baseEnd = i + 1
			}
		}
		if baseEnd < 0 {
			return nil, fmt.Errorf("label %s=%s names no layer: %w", LabelFinalDiffID, fd, errdefs.ErrInvalid)
		}
	}
	var want *ostree.Checksum
	if s, ok := labels[LabelCommit]; ok {
		c, err := ostree.ParseChecksum(s)
		if err != nil {
			return nil, fmt.Errorf("label %s: %w", LabelCommit, err)
		}
		want = &c
	}

	txn, err := r.Begin()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, txn.Abort())
		}
	}()
	res := &PullResult{ManifestDigest: digest.String()}
	imp := importer{txn: txn, layers: layers, diffIDs: diffIDs, maxSize: opts.MaxLayerSize, res: res, progress: opts.Progress}

	// The base: reused when its commit is in the repository already.
	have := false
	if want != nil {
		if have, err = r.HasObject(ostree.ObjectName{Checksum: *want, Type: ostree.ObjectCommit}); err != nil {
			return nil, err
		}
	}
	// What will be downloaded: the derived layers, and the base layers no layer ref keeps
	// unless the base commit is here.
	toFetch, order, size := layersToFetch(r, layers, diffIDs, baseEnd, have)
	res.BytesToFetch = size
	if opts.Progress != nil {
		opts.Progress.SetTotal(res.BytesToFetch)
	}
	// From a registry, the blobs are downloaded several at a time, resumable, while the
	// layers are applied in order.
	if ref.Transport == TransportRegistry && len(order) > 0 {
		nr, err := name.ParseReference(ref.Name, opts.nameOptions()...)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %v: %w", ref, err, errdefs.ErrInvalid)
		}
		f, err := newBlobFetcher(ctx, nr, opts.RegistryOptions, filepath.Join(r.Path(), "tmp", blobDir))
		if err != nil {
			return nil, err
		}
		f.progress = opts.Progress
		wait, stop := f.prefetch(ctx, toFetch, order)
		defer func() {
			stop()
			res.BytesFetched = f.fetched
			if err == nil {
				for _, i := range order {
					if d, derr := layers[i].Digest(); derr == nil {
						os.Remove(f.path(d))
					}
				}
			}
		}()
		imp.blob = wait
	}
	if have {
		res.Base = *want
		res.LayersSkipped = baseEnd
		if res.LayersRecorded, err = imp.recordLocal(ctx, *want, baseEnd); err != nil {
			return nil, err
		}
	} else if res.Base, err = imp.base(ctx, baseEnd, want, cfg, digest); err != nil {
		return nil, err
	}
	res.Commit = res.Base
	if baseEnd < len(layers) {
		if res.Commit, err = imp.derived(ctx, baseEnd, res.Base, cfg, digest); err != nil {
			return nil, err
		}
	}
	if opts.Ref != "" {
		if err := txn.SetRef("", opts.Ref, res.Commit); err != nil {
			return nil, err
		}
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	return res, nil
}

type importer struct {
	txn      *repo.Txn
	layers   []v1.Layer
	diffIDs  []v1.Hash
	maxSize  int64
	res      *PullResult
	progress Progress
	// blob, when set, waits for the downloaded file of layer i (registry pulls).
	blob func(i int) (string, error)
}

// base builds the tree of layers [0, end) and commits it: with the carried commit object
// when the image has one (it must name exactly the tree the layers built), else with a
// commit made from the config.
func (imp *importer) base(ctx context.Context, end int, want *ostree.Checksum, cfg *v1.ConfigFile, digest v1.Hash) (ostree.Checksum, error) {
	t, err := newTree(imp.txn)
	if err != nil {
		return ostree.Checksum{}, err
	}
	carried := map[string][]byte{}
	for i := range end {
		lt, err := imp.layerTree(ctx, i, t, carried)
		if err != nil {
			return ostree.Checksum{}, err
		}
		if err := t.merge(t.Root, lt.Root, lt); err != nil {
			return ostree.Checksum{}, fmt.Errorf("layer %d: %w", i, err)
		}
	}
	a := &applier{carried: carried}
	rootTree, rootMeta, err := t.Write()
	if err != nil {
		return ostree.Checksum{}, err
	}
	if want == nil {
		return imp.commit(ostree.Commit{RootTree: rootTree, RootMeta: rootMeta}, cfg, digest)
	}
	b, ok := a.carried[want.String()+".commit"]
	if !ok {
		return ostree.Checksum{}, fmt.Errorf("image labelled %s=%s carries no such commit object: %w", LabelCommit, want, errdefs.ErrInvalid)
	}
	c, err := ostree.ParseCommit(b)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("carried commit %s: %w", want, err)
	}
	if c.RootTree != rootTree || c.RootMeta != rootMeta {
		return ostree.Checksum{}, fmt.Errorf("layers build tree %s/%s, commit %s names %s/%s: %w",
			rootTree, rootMeta, want, c.RootTree, c.RootMeta, errdefs.ErrInvalid)
	}
	if err := imp.txn.WriteMetadataExpect(ostree.ObjectCommit, *want, b); err != nil {
		return ostree.Checksum{}, fmt.Errorf("writing commit %s: %w", want, err)
	}
	if meta, ok := a.carried[want.String()+".commitmeta"]; ok {
		if _, err := ostree.ParseMetadata(meta); err != nil {
			return ostree.Checksum{}, fmt.Errorf("carried detached metadata of %s: %w", want, err)
		}
		if err := imp.txn.WriteCommitMeta(*want, meta); err != nil {
			return ostree.Checksum{}, fmt.Errorf("writing detached metadata of %s: %w", want, err)
		}
	}
	return *want, nil
}

// LayerRefPrefix names the refs that keep the tree of each imported layer, by diff ID, so
// that an update fetches only the layers that changed (ostree-ext keeps
// ostree/container/blob/ refs the same way).
const LayerRefPrefix = "ostree/container/blob/sha256_3A_"

// layerTree returns the tree of base layer i on its own: from its layer ref when an
// earlier pull kept it, else downloaded, with its whiteouts applied to lower (the layers
// below) and, when the layer stands on its own, kept under its layer ref.
func (imp *importer) layerTree(ctx context.Context, i int, lower *tree, carried map[string][]byte) (*tree, error) {
	ref := LayerRefPrefix + imp.diffIDs[i].Hex
	if c, err := imp.txn.Repo().ReadRef("", ref); err == nil {
		if b, err := imp.txn.ReadMetadata(ostree.ObjectCommit, c); err == nil {
			if lc, err := ostree.ParseCommit(b); err == nil {
				imp.res.LayersSkipped++
				return treeFromCommit(imp.txn, lc), nil
			}
		}
	}
	lt, err := newTree(imp.txn)
	if err != nil {
		return nil, err
	}
	a := &applier{t: lt, lower: lower, maxSize: imp.maxSize, carried: carried}
	if err := imp.apply(ctx, a, i); err != nil {
		return nil, err
	}
	for _, w := range a.whiteouts {
		if err := whiteout(lower, false, w[0], w[1]); err != nil {
			return nil, fmt.Errorf("layer %d: applying whiteout %s/%s: %w", i, w[0], w[1], err)
		}
	}
	if _, err := imp.keepLayer(i, lt, a); err != nil {
		return nil, err
	}
	return lt, nil
}

// keepLayer writes the tree lt of base layer i, applied by a, as a commit under the
// layer's ref, unless the layer does not stand on its own (whiteouts, carried objects,
// directories it does not list itself). It says whether it kept it.
func (imp *importer) keepLayer(i int, lt *tree, a *applier) (bool, error) {
	if len(a.whiteouts) > 0 || a.carriedN > 0 || hasImplicit(lt.Root) {
		return false, nil
	}
	root, meta, err := lt.Write()
	if err != nil {
		return false, err
	}
	lc := ostree.Commit{RootTree: root, RootMeta: meta, Subject: "Layer " + imp.diffIDs[i].String()}
	b, err := lc.Marshal()
	if err != nil {
		return false, err
	}
	c, err := imp.txn.WriteMetadata(ostree.ObjectCommit, b)
	if err != nil {
		return false, fmt.Errorf("writing commit of layer %s: %w", imp.diffIDs[i], err)
	}
	if err := imp.txn.SetRef("", LayerRefPrefix+imp.diffIDs[i].Hex, c); err != nil {
		return false, err
	}
	return true, nil
}

// derived applies layers [start, len) to the base commit's tree and commits the result
// with the base as parent.
func (imp *importer) derived(ctx context.Context, start int, base ostree.Checksum, cfg *v1.ConfigFile, digest v1.Hash) (ostree.Checksum, error) {
	b, err := imp.txn.ReadMetadata(ostree.ObjectCommit, base)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("reading base commit %s: %w", base, err)
	}
	bc, err := ostree.ParseCommit(b)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("reading base commit %s: %w", base, err)
	}
	t := treeFromCommit(imp.txn, bc)
	a := &applier{t: t, derived: true, maxSize: imp.maxSize}
	for i := start; i < len(imp.layers); i++ {
		if err := imp.apply(ctx, a, i); err != nil {
			return ostree.Checksum{}, err
		}
	}
	if len(a.tmpfiles) > 0 {
		sort.Strings(a.tmpfiles)
		body := "# /var content of the image's derived layers, recreated at boot\n" + strings.Join(a.tmpfiles, "\n") + "\n"
		d, err := t.dir("usr/lib/tmpfiles.d", true)
		if err != nil {
			return ostree.Checksum{}, err
		}
		c, err := imp.txn.WriteContent(ostree.FileInfo{Mode: 0o100644}, strings.NewReader(body), int64(len(body)), nil)
		if err != nil {
			return ostree.Checksum{}, fmt.Errorf("writing %s: %w", DerivedTmpfiles, err)
		}
		_, name := splitPath(DerivedTmpfiles)
		d.Children[name] = &node{Content: c}
	}
	rootTree, rootMeta, err := t.Write()
	if err != nil {
		return ostree.Checksum{}, err
	}
	return imp.commit(ostree.Commit{Parent: base, RootTree: rootTree, RootMeta: rootMeta,
		Subject: "Derived image " + digest.String()}, cfg, digest)
}

// commit writes a commit for an image layer set, its time and version from the config, so
// that importing the same image twice gives the same checksum.
func (imp *importer) commit(c ostree.Commit, cfg *v1.ConfigFile, digest v1.Hash) (ostree.Checksum, error) {
	if v := cfg.Config.Labels[LabelVersion]; v != "" {
		c.Metadata.Set(ostree.MetaVersion, gvariant.NewVariant("s", v))
	}
	c.Metadata.Set(MetaManifestDigest, gvariant.NewVariant("s", digest.String()))
	if t := cfg.Created.Unix(); t > 0 {
		c.Timestamp = uint64(t)
	}
	b, err := c.Marshal()
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("encoding commit: %w", err)
	}
	sum, err := imp.txn.WriteMetadata(ostree.ObjectCommit, b)
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("writing commit: %w", err)
	}
	return sum, nil
}

// apply downloads layer i and applies it. The compressed stream must match the layer's
// digest and the uncompressed one the config's diff ID; until the transaction commits,
// nothing of it is visible.
func (imp *importer) apply(ctx context.Context, a *applier, i int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l := imp.layers[i]
	dg, err := l.Digest()
	if err != nil {
		return fmt.Errorf("layer %d: %w", i, err)
	}
	var rc io.ReadCloser
	var src io.Reader
	var p string
	if imp.blob != nil {
		if p, err = imp.blob(i); err != nil && !errors.Is(err, errNotPrefetched) {
			return fmt.Errorf("fetching layer %s: %w", dg, err)
		}
	}
	if p != "" {
		f, err := os.Open(p)
		if err != nil {
			return fmt.Errorf("opening layer %s: %w", dg, err)
		}
		rc, src = f, f
	} else {
		if rc, err = l.Compressed(); err != nil {
			return fmt.Errorf("fetching layer %s: %w", dg, classify(err))
		}
		src = &counter{r: rc, res: imp.res, p: imp.progress}
	}
	defer rc.Close()
	ch := sha256.New()
	in := io.TeeReader(src, ch)
	un, err := decompress(in)
	if err != nil {
		return fmt.Errorf("layer %s: %w", dg, err)
	}
	defer un.Close()
	uh := sha256.New()
	limit := imp.maxSize + imp.maxSize/8 + 1<<20 // content plus tar headers
	body := io.TeeReader(&capped{r: un, n: limit}, uh)
	if err := a.apply(body); err != nil {
		// A blob that is not what its digest says explains any error in its content: read
		// the rest of it (no more than the manifest says it has) to tell which it was.
		size, _ := l.Size()
		if _, derr := io.Copy(io.Discard, io.LimitReader(in, size+1)); derr == nil {
			if verr := checkDigests(ch, uh, nil, nil, dg, imp.diffIDs[i]); verr != nil {
				return fmt.Errorf("layer %s: %w", dg, verr)
			}
		}
		return fmt.Errorf("layer %s: %w", dg, err)
	}
	if err := checkDigests(ch, uh, body, in, dg, imp.diffIDs[i]); err != nil {
		return fmt.Errorf("layer %s: %w", dg, err)
	}
	imp.res.LayersFetched++
	return nil
}

// checkDigests reads what is left of the layer (the tar's padding, the compressed trailer)
// and compares both hashes. With nil readers it compares only the compressed hash of what
// was read so far.
func checkDigests(ch, uh hash.Hash, body, in io.Reader, digest, diffID v1.Hash) error {
	if body != nil {
		if _, err := io.Copy(io.Discard, body); err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
		if _, err := io.Copy(io.Discard, in); err != nil {
			return fmt.Errorf("reading layer: %w", err)
		}
	}
	if got := "sha256:" + hex.EncodeToString(ch.Sum(nil)); got != digest.String() {
		return fmt.Errorf("blob is %s, not its digest: %w", got, errdefs.ErrInvalid)
	}
	if body == nil {
		return nil
	}
	if got := "sha256:" + hex.EncodeToString(uh.Sum(nil)); got != diffID.String() {
		return fmt.Errorf("uncompressed layer is %s, not diff ID %s: %w", got, diffID, errdefs.ErrInvalid)
	}
	return nil
}

// layersToFetch returns the layers a pull downloads (the derived ones, and the base ones no
// layer ref keeps unless the base commit is in the repository), in order, and their
// compressed size.
func layersToFetch(r *repo.Repo, layers []v1.Layer, diffIDs []v1.Hash, baseEnd int, have bool) (map[int]v1.Layer, []int, int64) {
	toFetch := map[int]v1.Layer{}
	var order []int
	var size int64
	for i, l := range layers {
		if i < baseEnd && (have || hasRef(r, LayerRefPrefix+diffIDs[i].Hex)) {
			continue
		}
		if n, err := l.Size(); err == nil {
			size += n
		}
		toFetch[i] = l
		order = append(order, i)
	}
	return toFetch, order, size
}

func hasRef(r *repo.Repo, name string) bool {
	_, err := r.ReadRef("", name)
	return err == nil
}

// counter counts the compressed bytes of a layer as they arrive.
type counter struct {
	r   io.Reader
	res *PullResult
	p   Progress
}

func (c *counter) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.res.BytesFetched += int64(n)
	if c.p != nil && n > 0 {
		c.p.Add(int64(n))
	}
	return n, err
}

// capped fails a read past n bytes (a layer that decompresses beyond any bound).
type capped struct {
	r io.Reader
	n int64
}

func (c *capped) Read(p []byte) (int, error) {
	if c.n <= 0 {
		return 0, fmt.Errorf("uncompressed layer too large: %w", errdefs.ErrInvalid)
	}
	if int64(len(p)) > c.n {
		p = p[:c.n]
	}
	n, err := c.r.Read(p)
	c.n -= int64(n)
	return n, err
}

// decompress detects gzip, zstd or a plain tar by magic.
func decompress(r io.Reader) (io.ReadCloser, error) {
	br := &peekReader{r: r}
	magic, err := br.peek(4)
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		z, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading gzip layer: %v: %w", err, errdefs.ErrInvalid)
		}
		return z, nil
	case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		z, err := zstd.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("reading zstd layer: %w", err)
		}
		return z.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	p.buf = make([]byte, n)
	m, err := io.ReadFull(p.r, p.buf)
	p.buf = p.buf[:m]
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		err = nil
	}
	return p.buf, err
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}
