package oci

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/match"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/strata-os/strata/internal/errdefs"
)

const refNameAnnotation = "org.opencontainers.image.ref.name"

// platform is the one strata runs on and imports.
var platform = v1.Platform{OS: "linux", Architecture: runtime.GOARCH}

// openImage opens the image ref names. cleanup removes what reading an archive unpacked.
func openImage(ctx context.Context, ref Ref, ro RegistryOptions) (img v1.Image, cleanup func(), err error) {
	cleanup = func() {}
	switch ref.Transport {
	case TransportRegistry:
		nr, err := name.ParseReference(ref.Name, ro.nameOptions()...)
		if err != nil {
			return nil, cleanup, fmt.Errorf("parsing %s: %v: %w", ref, err, errdefs.ErrInvalid)
		}
		opts, err := ro.remoteOptions(ctx)
		if err != nil {
			return nil, cleanup, err
		}
		img, err := remote.Image(nr, append(opts, remote.WithPlatform(platform))...)
		if err != nil {
			return nil, cleanup, fmt.Errorf("fetching manifest of %s: %w", ref, classify(err))
		}
		return img, cleanup, nil
	case TransportLayout:
		img, err := layoutImage(ref.Name, ref.Tag)
		return img, cleanup, err
	case TransportOCIArchive:
		dir, err := os.MkdirTemp("", "strata-oci-archive-")
		if err != nil {
			return nil, cleanup, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		if err := untarLayout(ref.Name, dir); err != nil {
			return nil, cleanup, err
		}
		img, err := layoutImage(dir, ref.Tag)
		return img, cleanup, err
	}
	return nil, cleanup, fmt.Errorf("transport %q: %w", ref.Transport, errdefs.ErrUnsupported)
}

// classify gives registry errors a class: a server error or a network failure can be
// retried, a missing manifest is not found, refused credentials are a precondition.
func classify(err error) error {
	var te *transport.Error
	var ne net.Error
	switch {
	case errors.As(err, &te) && te.StatusCode >= 500:
		return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	case errors.As(err, &te) && te.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case errors.As(err, &te) && (te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%w: %w", err, errdefs.ErrFailedPrecondition)
	case errors.As(err, &ne), errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	case strings.Contains(err.Error(), "no child with platform"):
		// go-containerregistry says so in words only (remote.Image on a manifest list).
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	}
	return err
}

// layoutImage finds the image tagged tag (or the only one) in an OCI layout; a manifest
// list there is resolved to strata's platform.
func layoutImage(dir, tag string) (v1.Image, error) {
	p, err := layout.FromPath(dir)
	if err != nil {
		return nil, fmt.Errorf("opening OCI layout %s: %w", dir, err)
	}
	ii, err := p.ImageIndex()
	if err != nil {
		return nil, fmt.Errorf("reading index of %s: %w", dir, err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("reading index of %s: %w", dir, err)
	}
	var found []v1.Descriptor
	for _, d := range im.Manifests {
		if tag != "" && d.Annotations[refNameAnnotation] != tag {
			continue
		}
		if d.Platform != nil && !d.Platform.Satisfies(platform) {
			continue // a manifest list's image for another platform
		}
		found = append(found, d)
	}
	if len(found) != 1 {
		return nil, fmt.Errorf("OCI layout %s: %d images tagged %q for %s/%s, want one: %w", dir, len(found), tag, platform.OS, platform.Architecture, errdefs.ErrNotFound)
	}
	d := found[0]
	if d.MediaType.IsIndex() {
		child, err := ii.ImageIndex(d.Digest)
		if err != nil {
			return nil, fmt.Errorf("reading manifest list %s: %w", d.Digest, err)
		}
		cm, err := child.IndexManifest()
		if err != nil {
			return nil, fmt.Errorf("reading manifest list %s: %w", d.Digest, err)
		}
		for _, c := range cm.Manifests {
			if c.Platform != nil && c.Platform.Satisfies(platform) && c.MediaType.IsImage() {
				return child.Image(c.Digest)
			}
		}
		return nil, fmt.Errorf("manifest list %s: no image for %s/%s: %w", d.Digest, platform.OS, platform.Architecture, errdefs.ErrNotFound)
	}
	return ii.Image(d.Digest)
}

// untarLayout unpacks an oci-archive: only the layout's own files, regular, beneath dir.
func untarLayout(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("opening archive: %w", err)
	}
	defer f.Close()
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading archive %s: %w", file, err)
		}
		p := path.Clean(strings.TrimPrefix(h.Name, "./"))
		ok := p == "index.json" || p == "oci-layout" || strings.HasPrefix(p, "blobs/sha256/")
		if h.Typeflag == tar.TypeDir || !ok || p == "blobs/sha256" {
			continue
		}
		if h.Typeflag != tar.TypeReg {
			return fmt.Errorf("archive %s: entry %q is not a regular file: %w", file, h.Name, errdefs.ErrInvalid)
		}
		if err := root.MkdirAll(path.Dir(p), 0o755); err != nil {
			return fmt.Errorf("unpacking archive %s: %w", file, err)
		}
		out, err := root.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return fmt.Errorf("unpacking archive %s: %w", file, err)
		}
		_, err = io.Copy(out, tr)
		if cerr := out.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("unpacking archive %s: %w", file, err)
		}
	}
}

// writeImage stores img at ref.
func writeImage(ctx context.Context, img v1.Image, ref Ref, ro RegistryOptions) error {
	switch ref.Transport {
	case TransportRegistry:
		nr, err := name.ParseReference(ref.Name, ro.nameOptions()...)
		if err != nil {
			return fmt.Errorf("parsing %s: %v: %w", ref, err, errdefs.ErrInvalid)
		}
		opts, err := ro.remoteOptions(ctx)
		if err != nil {
			return err
		}
		if err := remote.Write(nr, img, opts...); err != nil {
			return fmt.Errorf("pushing to %s: %w", ref, classify(err))
		}
		return nil
	case TransportLayout:
		return writeLayout(ref.Name, ref.Tag, img)
	case TransportOCIArchive:
		dir, err := os.MkdirTemp(filepath.Dir(ref.Name), ".strata-oci-archive-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if err := writeLayout(dir, ref.Tag, img); err != nil {
			return err
		}
		return tarLayout(dir, ref.Name)
	}
	return fmt.Errorf("transport %q: %w", ref.Transport, errdefs.ErrUnsupported)
}

func writeLayout(dir, tag string, img v1.Image) error {
	p, err := layout.FromPath(dir)
	if err != nil {
		if p, err = layout.Write(dir, empty.Index); err != nil {
			return fmt.Errorf("creating OCI layout %s: %w", dir, err)
		}
	}
	var opts []layout.Option
	if tag != "" {
		opts = append(opts, layout.WithAnnotations(map[string]string{refNameAnnotation: tag}))
	}
	if err := p.ReplaceImage(img, match.Annotation(refNameAnnotation, tag), opts...); err != nil {
		return fmt.Errorf("writing image to OCI layout %s: %w", dir, err)
	}
	return nil
}

// tarLayout writes the layout at dir as a reproducible tar (sorted names, zero times,
// root owner) to file, through a temporary file renamed into place.
func tarLayout(dir, file string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			rel, err := filepath.Rel(dir, p)
			names = append(names, rel)
			return err
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	sort.Strings(names)
	tmp, err := os.CreateTemp(filepath.Dir(file), ".strata-oci-archive-*.tar")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tw := tar.NewWriter(tmp)
	for _, n := range names {
		f, err := os.Open(filepath.Join(dir, n))
		if err != nil {
			tmp.Close()
			return err
		}
		st, err := f.Stat()
		if err == nil {
			err = tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: st.Size(), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
		}
		if err == nil {
			_, err = io.Copy(tw, f)
		}
		f.Close()
		if err != nil {
			tmp.Close()
			return fmt.Errorf("writing archive %s: %w", file, err)
		}
	}
	if err := tw.Close(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing archive %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
