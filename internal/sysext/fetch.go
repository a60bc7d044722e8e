package sysext

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/strata-os/strata/internal/errdefs"
	"github.com/strata-os/strata/internal/fsutil"
	"github.com/strata-os/strata/internal/osrelease"
	"github.com/strata-os/strata/internal/sign"
)

// PublishDir is the directory, beside a repository's objects and refs,
// where per-OS-version extensions are published:
// extensions/NAME/VERSION_ID/NAME.raw and NAME.raw.sig
// (docs/sysext.md, "Extensions that follow upgrades").
const PublishDir = "extensions"

// maxSigSize bounds a detached signature file.
const maxSigSize = 1 << 20

// SignedData is what a published extension's signature covers: the
// extension's name, the OS version it is published for and its SHA-256,
// so that a signature cannot be moved to another name or version (an old
// image replayed under a new version's path fails to verify).
func SignedData(name, version string, digest []byte) []byte {
	return fmt.Appendf(nil, "strata-sysext-v1\x00%s\x00%s\x00sha256:%x", name, version, digest)
}

// Verifier checks detached signatures (the shape of pull's Verifier, so
// that a remote's policy verifies its extensions as it verifies commits).
type Verifier interface {
	Verify(data, detached []byte) (key string, err error)
}

// publishedPath is the path of an image under a repository or URL.
func publishedPath(name, version string) string {
	return PublishDir + "/" + name + "/" + version + "/" + name + ".raw"
}

// Publish copies the extension image at image into the repository
// directory repoDir for the OS version version, with a signature over
// SignedData made by signers (detached metadata as for commits), both
// written atomically. The image is inspected first.
func Publish(repoDir, image, version string, signers ...sign.Signer) (Image, error) {
	if err := CheckVersion("VERSION_ID", version); err != nil {
		return Image{}, err
	}
	if len(signers) == 0 {
		return Image{}, fmt.Errorf("publishing extension %s: no signing key: %w", image, errdefs.ErrInvalid)
	}
	img, err := Inspect(image)
	if err != nil {
		return Image{}, err
	}
	data, err := os.ReadFile(image)
	if err != nil {
		return Image{}, fmt.Errorf("publishing extension %s: %w", img.Name, err)
	}
	digest := sha256sum(data)
	sig, err := sign.Append(nil, SignedData(img.Name, version, digest), signers...)
	if err != nil {
		return Image{}, fmt.Errorf("signing extension %s: %w", img.Name, err)
	}
	dest := filepath.Join(repoDir, filepath.FromSlash(publishedPath(img.Name, version)))
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return Image{}, fmt.Errorf("publishing extension %s: %w", img.Name, err)
	}
	if err := fsutil.WriteFileAtomic(dest, data, 0o644); err != nil {
		return Image{}, fmt.Errorf("publishing extension %s: %w", img.Name, err)
	}
	if err := fsutil.WriteFileAtomic(dest+sigSuffix, sig, 0o644); err != nil {
		return Image{}, fmt.Errorf("publishing extension %s: %w", img.Name, err)
	}
	return img, nil
}

// FetchOptions say where Fetch gets an image and what it must match.
type FetchOptions struct {
	Client   *http.Client
	BaseURL  string   // the repository's URL (a remote's url)
	Verifier Verifier // the remote's keys; required
	// Target is the os-release of the commit the image is for: its
	// VERSION_ID picks the published image, and the image must Match it
	// on Arch.
	Target osrelease.Values
	Arch   string
}

// FetchResult says what Fetch did.
type FetchResult struct {
	Path    string // the image in the store
	Fetched bool   // false: the same signed image was already there
	Image   Image
}

// Fetch brings the published image of the followed extension name for
// the OS version of opts.Target into the store
// (FollowedPath(name, VERSION_ID)). The signature is fetched first (at
// most 1 MiB); when it equals the one kept beside the stored image
// nothing else is fetched. Otherwise the image is downloaded into a 0600
// temporary file (at most MaxImageSize bytes) while hashed, and it gets
// its place only after the signature verified over SignedData, Inspect
// accepted it and it Matches the target. Nothing published for that
// version is errdefs.ErrNotFound; a bad signature wraps
// sign.ErrUntrusted or ErrNoSignature; nothing is placed on any error.
func (s Store) Fetch(ctx context.Context, name string, opts FetchOptions) (FetchResult, error) {
	if err := CheckName(name); err != nil {
		return FetchResult{}, err
	}
	if opts.Verifier == nil {
		return FetchResult{}, errors.New("internal error: Fetch without a verifier")
	}
	version := opts.Target["VERSION_ID"]
	if err := CheckVersion("VERSION_ID", version); err != nil {
		return FetchResult{}, fmt.Errorf("fetching extension %s: the target's os-release: %w", name, err)
	}
	base, err := url.Parse(strings.TrimSuffix(opts.BaseURL, "/") + "/")
	if err != nil || (base.Scheme != "http" && base.Scheme != "https" && base.Scheme != "file") {
		return FetchResult{}, fmt.Errorf("fetching extension %s: repository URL %q: %w", name, opts.BaseURL, errdefs.ErrInvalid)
	}
	src := base.JoinPath(publishedPath(name, version)).String()
	dest := s.FollowedPath(name, version)
	what := fmt.Sprintf("extension %s for VERSION_ID %s", name, version)
	sig, err := get(ctx, opts.Client, src+sigSuffix, maxSigSize)
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetching %s: %w", what, err)
	}
	defer sig.Close()
	sigData, err := io.ReadAll(io.LimitReader(sig, maxSigSize+1))
	if err != nil || len(sigData) > maxSigSize {
		return FetchResult{}, fmt.Errorf("fetching %s: signature: %w", what, errors.Join(err, errdefs.ErrUnavailable))
	}
	if old, err := os.ReadFile(dest + sigSuffix); err == nil && bytes.Equal(old, sigData) {
		// The same signature: keep the stored image if it still verifies
		// (a crash may have left a new signature beside an old image).
		if digest, err := fileSHA256(dest); err == nil {
			if _, err := opts.Verifier.Verify(SignedData(name, version, digest), sigData); err == nil {
				if rel, err := readRelease(dest); err == nil && Match(rel, opts.Target, opts.Arch) == nil {
					return FetchResult{Path: dest, Image: Image{Name: name, Release: rel}}, nil
				}
			}
		}
	}
	body, err := get(ctx, opts.Client, src, MaxImageSize)
	if err != nil {
		return FetchResult{}, fmt.Errorf("fetching %s: %w", what, err)
	}
	defer body.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return FetchResult{}, fmt.Errorf("fetching %s: %w", what, err)
	}
	img, err := place(ctx, body, filepath.Dir(dest), name, func(tmp string, digest []byte) (Image, error) {
		if _, err := opts.Verifier.Verify(SignedData(name, version, digest), sigData); err != nil {
			return Image{}, fmt.Errorf("verifying the signature of sha256:%s: %w", hex.EncodeToString(digest), err)
		}
		img, err := inspectAs(tmp, name)
		if err != nil {
			return Image{}, err
		}
		if err := Match(img.Release, opts.Target, opts.Arch); err != nil {
			return Image{}, fmt.Errorf("published for VERSION_ID %s but %w", version, err)
		}
		rel, err := osrelease.Marshal(img.Release)
		if err != nil {
			return Image{}, err
		}
		if err := fsutil.WriteFileAtomic(dest+releaseSuffix, rel, 0o644); err != nil {
			return Image{}, err
		}
		return img, fsutil.WriteFileAtomic(dest+sigSuffix, sigData, 0o644)
	}, dest)
	if err != nil {
		os.Remove(dest + sigSuffix)
		os.Remove(dest + releaseSuffix)
		removeIfEmpty(filepath.Dir(dest))
		return FetchResult{}, fmt.Errorf("fetching %s: %w", what, err)
	}
	return FetchResult{Path: dest, Fetched: true, Image: img}, nil
}

// removeIfEmpty removes dir if it holds nothing (a version directory a
// failed fetch made).
func removeIfEmpty(dir string) {
	if des, err := os.ReadDir(dir); err == nil && len(des) == 0 {
		os.Remove(dir)
	}
}

// get opens src: an http(s) URL through client, or a file: URL (a
// repository on a local path). Not found is errdefs.ErrNotFound; other
// failures errdefs.ErrUnavailable. A declared length over limit is
// refused before reading.
func get(ctx context.Context, client *http.Client, src string, limit int64) (io.ReadCloser, error) {
	u, err := url.Parse(src)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, errdefs.ErrInvalid)
	}
	if u.Scheme == "file" {
		f, err := os.Open(u.Path)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%s: none published: %w", src, errdefs.ErrNotFound)
		}
		return f, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, errdefs.ErrInvalid)
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, errdefs.ErrUnavailable)
	}
	switch {
	case resp.StatusCode == http.StatusNotFound:
		resp.Body.Close()
		return nil, fmt.Errorf("%s: none published: %w", src, errdefs.ErrNotFound)
	case resp.StatusCode != http.StatusOK:
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %s: %w", src, resp.Status, errdefs.ErrUnavailable)
	case resp.ContentLength > limit:
		resp.Body.Close()
		return nil, fmt.Errorf("%s: %d bytes, more than %d: %w", src, resp.ContentLength, limit, ErrImage)
	}
	return resp.Body, nil
}

func fileSHA256(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
