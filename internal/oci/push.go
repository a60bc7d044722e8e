package oci

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/gzip"
	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/ostree"
	"github.com/strata-os/strata/internal/repo"
	"golang.org/x/sync/errgroup"
)

// PushOptions tune Push.
type PushOptions struct {
	RegistryOptions
	// MaxLayers bounds the layers; 0 means DefaultMaxLayers.
	MaxLayers int
	// TempDir holds the compressed layers while they are written when the repository's
	// blob cache does not keep them (docs/oci.md); "" means os.TempDir().
	TempDir string
	// SignKey, when set, signs the pushed image with a sigstore simple-signing signature
	// (registry only).
	SignKey *ecdsa.PrivateKey
}

// PushResult says what Push wrote.
type PushResult struct {
	Commit         ostree.Checksum
	ManifestDigest string
	Layers         int
	// LayersReused are the layers the registry had, as the repository's layer cache knew
	// them: not built, not sent.
	LayersReused int
	// LayersFromCache are the layers an earlier push built, sent from the repository's
	// blob cache without building them again.
	LayersFromCache int
}

// Push encapsulates the commit rev names and writes the image to dest.
func Push(ctx context.Context, r *repo.Repo, rev, dest string, opts PushOptions) (*PushResult, error) {
	ref, err := ParseRef(dest)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(opts.TempDir, "strata-oci-push-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	if opts.SignKey != nil && ref.Transport != TransportRegistry {
		return nil, fmt.Errorf("signing %s: sigstore signatures live in registries: %w", ref, errdefs.ErrUnsupported)
	}
	// To a registry, each layer is uploaded (unless the registry has it) as soon as it is
	// written, while the others are still being compressed.
	var up *uploader
	if ref.Transport == TransportRegistry {
		if up, err = newUploader(ctx, ref, opts.RegistryOptions); err != nil {
			return nil, err
		}
	}
	enc := &encoder{blobs: openBlobCache(r)}
	if up != nil {
		enc.ready, enc.has = up.start, up.has
	}
	img, commit, err := encapsulate(ctx, r, rev, dir, opts.MaxLayers, enc)
	if werr := up.wait(); err == nil && werr != nil {
		err = fmt.Errorf("pushing to %s: %w", ref, classify(werr))
	}
	if err != nil {
		return nil, err
	}
	if up != nil {
		// The layers are there (sent, or found there): the config and the manifest remain.
		if err := up.finish(img); err != nil {
			return nil, fmt.Errorf("pushing to %s: %w", ref, classify(err))
		}
	} else if err := writeImage(ctx, img, ref, opts.RegistryOptions); err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	if opts.SignKey != nil {
		nr, err := name.ParseReference(ref.Name, opts.nameOptions()...)
		if err != nil {
			return nil, fmt.Errorf("parsing %s: %v: %w", ref, err, errdefs.ErrInvalid)
		}
		if err := signImage(ctx, nr, d, opts.SignKey, opts.RegistryOptions); err != nil {
			return nil, err
		}
	}
	ls, err := img.Layers()
	if err != nil {
		return nil, err
	}
	return &PushResult{Commit: commit, ManifestDigest: d.String(), Layers: len(ls),
		LayersReused: int(enc.reused.Load()), LayersFromCache: int(enc.cached.Load())}, nil
}

// entry is one path of the commit's tree, in walk order.
type entry struct {
	path string // relative: "usr/bin/sh"; "" is the root
	dir  bool
	meta ostree.DirMeta
	sum  ostree.Checksum
	fi   ostree.FileInfo
	size int64
}

// Encapsulate builds the image of the commit rev names; its layers are files under dir,
// which must outlive the image. The same commit always gives the same image.
func Encapsulate(ctx context.Context, r *repo.Repo, rev, dir string, maxLayers int) (v1.Image, ostree.Checksum, error) {
	return encapsulate(ctx, r, rev, dir, maxLayers, &encoder{})
}

// uploader sends layers to a registry repository as they are written, a few at a time,
// and then the image. One pusher does it all: it authenticates once, and knows which
// blobs it sent when the manifest goes.
type uploader struct {
	ctx    context.Context
	ref    name.Reference
	p      *remote.Pusher
	puller *remote.Puller
	sem    chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	err    error
}

func newUploader(ctx context.Context, ref Ref, ro RegistryOptions) (*uploader, error) {
	nr, err := name.ParseReference(ref.Name, ro.nameOptions()...)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %v: %w", ref, err, errdefs.ErrInvalid)
	}
	opts, err := ro.remoteOptions(ctx)
	if err != nil {
		return nil, err
	}
	jobs := ro.Jobs
	if jobs <= 0 {
		jobs = 4
	}
	p, err := remote.NewPusher(opts...)
	if err != nil {
		return nil, fmt.Errorf("pushing to %s: %w", ref, classify(err))
	}
	pl, err := remote.NewPuller(opts...)
	if err != nil {
		return nil, fmt.Errorf("pushing to %s: %w", ref, classify(err))
	}
	return &uploader{ctx: ctx, ref: nr, p: p, puller: pl, sem: make(chan struct{}, jobs)}, nil
}

// finish sends the config of img and its manifest, once every layer is in the registry.
func (u *uploader) finish(img v1.Image) error {
	cl, err := partial.ConfigLayer(img)
	if err != nil {
		return err
	}
	if err := u.p.Upload(u.ctx, u.ref.Context(), cl); err != nil {
		return err
	}
	return u.p.Put(u.ctx, u.ref, img)
}

// has says whether the registry repository has the blob d; an error counts as no.
func (u *uploader) has(d v1.Hash) bool {
	l, err := u.puller.Layer(u.ctx, u.ref.Context().Digest(d.String()))
	if err != nil {
		return false
	}
	ok, err := partial.Exists(l)
	return err == nil && ok
}

// start uploads l in the background; a nil uploader does nothing.
func (u *uploader) start(l v1.Layer) {
	if u == nil {
		return
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		u.sem <- struct{}{}
		defer func() { <-u.sem }()
		if err := u.p.Upload(u.ctx, u.ref.Context(), l); err != nil {
			u.mu.Lock()
			u.err = errors.Join(u.err, err)
			u.mu.Unlock()
		}
	}()
}

// wait waits for the uploads and returns their errors.
func (u *uploader) wait() error {
	if u == nil {
		return nil
	}
	u.wg.Wait()
	return u.err
}

// encoder says what encapsulate does besides writing layers; the zero value does nothing.
type encoder struct {
	// ready, if set, is called with each layer once it is written.
	ready func(v1.Layer)
	// has, if set, says whether the destination has a blob: a layer remembered in the
	// repository's layer cache whose blob it has is not built again.
	has func(v1.Hash) bool
	// blobs, if set, is the repository's blob cache: layers built by an earlier push are
	// read from it, and the layers this push builds are kept in it.
	blobs          *blobCache
	reused, cached atomic.Int32
}

// reuse computes the layer key of each chunk and puts in layers those the layer cache
// knows and the destination has (when it can say: asking for several at once, each is a
// round trip), then those whose blob the blob cache keeps (handed to ready, as a layer
// just built would be).
func (enc *encoder) reuse(ctx context.Context, r *repo.Repo, entries []entry, chunks []*chunk, layers []v1.Layer) ([]string, error) {
	keys := make([]string, len(chunks))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, ch := range chunks {
		g.Go(func() error {
			var err error
			if keys[i], err = layerKey(gctx, entries, ch, i == 0); err != nil {
				return err
			}
			k := readCachedLayer(r.Path(), keys[i])
			if k == nil {
				return nil
			}
			if enc.has != nil && enc.has(k.digest) {
				touchCachedLayer(r.Path(), keys[i])
				layers[i] = k
				enc.reused.Add(1)
				return nil
			}
			if l := enc.blobs.open(k); l != nil {
				touchCachedLayer(r.Path(), keys[i])
				layers[i] = l
				enc.cached.Add(1)
				if enc.ready != nil {
					enc.ready(l)
				}
			}
			return nil
		})
	}
	return keys, g.Wait()
}

// encapsulate is Encapsulate as enc says.
func encapsulate(ctx context.Context, r *repo.Repo, rev, dir string, maxLayers int, enc *encoder) (v1.Image, ostree.Checksum, error) {
	if maxLayers <= 0 {
		maxLayers = DefaultMaxLayers
	}
	if maxLayers < 3 {
		return nil, ostree.Checksum{}, fmt.Errorf("at most %d layers: need 3: %w", maxLayers, errdefs.ErrInvalid)
	}
	commit, err := r.ResolveRev(rev)
	if err != nil {
		return nil, ostree.Checksum{}, err
	}
	lay, err := readLayout(ctx, r, commit)
	if err != nil {
		return nil, commit, err
	}
	commitBytes, c, detached, entries, kver := lay.commitBytes, lay.c, lay.detached, lay.entries, lay.kver
	chunks := lay.chunks(maxLayers)

	// Write the layers in parallel: each is a pure function of the commit. The biggest go
	// first, so that the last one to finish is a small one.
	layers := make([]v1.Layer, len(chunks)+1)
	keys, err := enc.reuse(ctx, r, entries, chunks, layers)
	if err != nil {
		return nil, commit, err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range lay.bySize(chunks) {
		if layers[i] != nil {
			continue
		}
		ch, key := chunks[i], keys[i]
		g.Go(func() error {
			// Into the blob cache when there is one, else into dir.
			path, inCache := enc.blobs.tempPath(), true
			if path == "" {
				path, inCache = filepath.Join(dir, "layer-"+strconv.Itoa(i)), false
			}
			l, err := writeLayer(path, func(tw *tar.Writer) error {
				return writeChunk(gctx, r, tw, entries, ch, i == 0)
			})
			if err != nil {
				if inCache {
					os.Remove(path)
				}
				return err
			}
			if inCache {
				enc.blobs.keep(l)
			}
			layers[i] = l
			writeCachedLayer(r.Path(), key, l)
			if enc.ready != nil {
				enc.ready(l)
			}
			return nil
		})
	}
	var last *fileLayer
	g.Go(func() error {
		l, err := writeLayer(filepath.Join(dir, "layer-commit"), func(tw *tar.Writer) error {
			return writeCommitObjects(tw, commit, commitBytes, detached)
		})
		if err != nil {
			return err
		}
		layers[len(chunks)], last = l, l
		if enc.ready != nil {
			enc.ready(l)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, commit, fmt.Errorf("writing layers of %s: %w", commit, err)
	}
	pruneLayerCache(r.Path(), layerCacheMax)
	enc.blobs.prune()

	created := v1.Time{Time: c.Time().UTC()}
	labels := map[string]string{
		LabelCommit:      commit.String(),
		LabelBootable:    "true",
		LabelBootc:       "1",
		LabelFinalDiffID: last.diffID.String(),
	}
	if kver != "" {
		labels[LabelLinux] = kver
	}
	if v := c.Version(); v != "" {
		labels[LabelVersion] = v
	}
	cfg := &v1.ConfigFile{
		Architecture: runtime.GOARCH, OS: "linux", Created: created,
		Config: v1.Config{Labels: labels},
		RootFS: v1.RootFS{Type: "layers"},
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.ConfigFile(img, cfg); err != nil {
		return nil, commit, err
	}
	adds := make([]mutate.Addendum, len(layers))
	for i, l := range layers {
		comps := "ostree commit " + commit.String()
		if i < len(chunks) {
			comps = strings.Join(chunks[i].components, ",")
		}
		adds[i] = mutate.Addendum{Layer: l, MediaType: types.OCILayer,
			Annotations: map[string]string{AnnotationComponents: comps},
			History:     v1.History{Created: created, CreatedBy: comps, Comment: "strata oci push"}}
	}
	if img, err = mutate.Append(img, adds...); err != nil {
		return nil, commit, err
	}
	return img, commit, nil
}

// commitLayout is what the image of a commit is made of: the commit, its tree in walk
// order and the package that owns each file.
type commitLayout struct {
	commit      ostree.Checksum
	commitBytes []byte
	c           *ostree.Commit
	detached    []byte
	entries     []entry
	files       map[string]int64 // path → size
	owner       map[string]string
	kver        string
}

// readLayout reads the commit, its detached metadata, its tree and its package database.
func readLayout(ctx context.Context, r *repo.Repo, commit ostree.Checksum) (*commitLayout, error) {
	l := &commitLayout{commit: commit, files: map[string]int64{}}
	var err error
	if l.commitBytes, err = r.ReadMetadata(ostree.ObjectCommit, commit); err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", commit, err)
	}
	if l.c, err = ostree.ParseCommit(l.commitBytes); err != nil {
		return nil, fmt.Errorf("reading commit %s: %w", commit, err)
	}
	if l.detached, err = r.ReadCommitMeta(commit); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("reading detached metadata of %s: %w", commit, err)
	}
	err = repo.WalkCommit(ctx, r, commit, func(e *repo.WalkEntry, err error) error {
		if err != nil {
			return err
		}
		p := strings.TrimPrefix(e.Path, "/")
		if p == carriedDir || strings.HasPrefix(p, carriedDir+"/") || p == "etc" {
			return fmt.Errorf("commit %s has /%s, which the image format reserves: %w", commit, p, errdefs.ErrInvalid)
		}
		en := entry{path: p, dir: e.Kind == repo.EntryDir, sum: e.Checksum}
		if en.dir {
			if en.meta, err = e.DirMeta(); err != nil {
				return err
			}
		} else {
			if en.fi, en.size, err = e.FileInfo(); err != nil {
				return err
			}
			l.files[p] = en.size
			if k, ok := strings.CutPrefix(p, "usr/lib/modules/"); ok && strings.HasSuffix(k, "/vmlinuz") && strings.Count(k, "/") == 1 {
				l.kver = strings.TrimSuffix(k, "/vmlinuz")
			}
		}
		l.entries = append(l.entries, en)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading tree of %s: %w", commit, err)
	}
	if l.owner, err = readPackageFiles(ctx, r, commit); err != nil {
		return nil, err
	}
	return l, nil
}

// chunks splits the files into the package layers of an image of at most maxLayers
// layers, the layer of unpackaged files first (the commit's layer comes after them).
func (l *commitLayout) chunks(maxLayers int) []*chunk {
	chunks := planChunks(l.files, l.owner, maxLayers)
	packaged := map[string]bool{}
	for _, ch := range chunks {
		for p := range ch.files {
			packaged[p] = true
		}
	}
	rest := &chunk{components: []string{"unpackaged"}, files: map[string]bool{}}
	for p := range l.files {
		if !packaged[p] {
			rest.files[p] = true
		}
	}
	return append([]*chunk{rest}, chunks...)
}

// bySize returns the indexes of chunks, the biggest (in file content) first.
func (l *commitLayout) bySize(chunks []*chunk) []int {
	size := make([]int64, len(chunks))
	order := make([]int, len(chunks))
	for i, ch := range chunks {
		order[i] = i
		for p := range ch.files {
			size[i] += l.files[p]
		}
	}
	sort.SliceStable(order, func(a, b int) bool { return size[order[a]] > size[order[b]] })
	return order
}

func isNotFound(err error) bool {
	return errors.Is(err, errdefs.ErrNotFound) || errors.Is(err, fs.ErrNotExist)
}

// layerCompression is gzip's fastest level: on a Debian tree it costs a third less CPU than
// the default level for layers about 13% larger (docs/oci.md, "Push").
const layerCompression = gzip.BestSpeed

// writeLayer writes a gzip tar layer to path and takes its digest and diff ID.
func writeLayer(path string, fill func(*tar.Writer) error) (*fileLayer, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	ch, uh := sha256.New(), sha256.New()
	// The compressor writes in small pieces: a buffer makes them few large writes.
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := &countWriter{w: io.MultiWriter(bw, ch)}
	z, err := gzip.NewWriterLevel(cw, layerCompression)
	if err != nil {
		return nil, err
	}
	tw := tar.NewWriter(io.MultiWriter(z, uh))
	if err := fill(tw); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := z.Close(); err != nil {
		return nil, err
	}
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	l := &fileLayer{path: path, size: cw.n}
	l.digest = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(ch.Sum(nil))}
	l.diffID = v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(uh.Sum(nil))}
	return l, f.Close()
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// tarName is where a commit path appears in a layer: /usr/etc as /etc.
func tarName(p string, dir bool) string {
	if p == "" {
		return "./"
	}
	if p == "usr/etc" || strings.HasPrefix(p, "usr/etc/") {
		p = strings.TrimPrefix(p, "usr/")
	}
	if dir {
		return p + "/"
	}
	return p
}

var epoch = time.Unix(0, 0)

func paxXattrs(xs []ostree.Xattr) map[string]string {
	if len(xs) == 0 {
		return nil
	}
	m := make(map[string]string, len(xs))
	for _, x := range xs {
		m["SCHILY.xattr."+x.Name] = string(x.Value)
	}
	return m
}

// writeChunk writes the files of ch with every directory above them; the first layer
// holds all directories, so empty ones are carried too.
func writeChunk(ctx context.Context, r *repo.Repo, tw *tar.Writer, entries []entry, ch *chunk, allDirs bool) error {
	buf := make([]byte, 256<<10) // one copy buffer for the layer, not one per file
	return chunkHeaders(ctx, entries, ch, allDirs, func(h *tar.Header, e *entry) error {
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg {
			return nil
		}
		c, err := r.OpenContent(e.sum)
		if err != nil {
			return fmt.Errorf("reading /%s: %w", e.path, err)
		}
		_, err = io.CopyBuffer(tw, c, buf)
		c.Close()
		if err != nil {
			return fmt.Errorf("reading /%s: %w", e.path, err)
		}
		return nil
	})
}

// chunkHeaders calls fn with the tar header of each entry of ch's layer, in order, and the
// entry (whose content follows a regular file's header).
func chunkHeaders(ctx context.Context, entries []entry, ch *chunk, allDirs bool, fn func(*tar.Header, *entry) error) error {
	need := map[string]bool{"": true}
	for p := range ch.files {
		for d, _ := splitPath(p); d != ""; d, _ = splitPath(d) {
			need[d] = true
		}
	}
	links := map[ostree.Checksum]string{}
	for i := range entries {
		e := &entries[i]
		if err := ctx.Err(); err != nil {
			return err
		}
		if e.dir {
			if !allDirs && !need[e.path] {
				continue
			}
			h := &tar.Header{Name: tarName(e.path, true), Typeflag: tar.TypeDir, Mode: int64(e.meta.Mode & 0o7777),
				Uid: int(e.meta.UID), Gid: int(e.meta.GID), ModTime: epoch, PAXRecords: paxXattrs(e.meta.Xattrs)}
			if err := fn(h, e); err != nil {
				return err
			}
			continue
		}
		if !ch.files[e.path] {
			continue
		}
		name := tarName(e.path, false)
		h := &tar.Header{Name: name, Mode: int64(e.fi.Mode & 0o7777), Uid: int(e.fi.UID), Gid: int(e.fi.GID),
			ModTime: epoch, PAXRecords: paxXattrs(e.fi.Xattrs)}
		switch {
		case e.fi.IsSymlink():
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.fi.SymlinkTarget
		case links[e.sum] != "":
			h.Typeflag, h.Linkname = tar.TypeLink, links[e.sum]
		default:
			h.Typeflag, h.Size = tar.TypeReg, e.size
			links[e.sum] = name
		}
		if err := fn(h, e); err != nil {
			return err
		}
	}
	return nil
}

// writeCommitObjects writes the commit object and its detached metadata where ostree-ext
// keeps them, sysroot/ostree/repo/objects. Their directories are left out: the commit's
// own tree may not have them, and tar(1) creates them.
func writeCommitObjects(tw *tar.Writer, commit ostree.Checksum, b, detached []byte) error {
	s := commit.String()
	put := func(name string, data []byte) error {
		h := &tar.Header{Name: carriedObjects + s[:2] + "/" + s[2:] + name, Typeflag: tar.TypeReg,
			Mode: 0o644, Size: int64(len(data)), ModTime: epoch}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := put(".commit", b); err != nil {
		return err
	}
	if detached != nil {
		return put(".commitmeta", detached)
	}
	return nil
}
